/** The client examples run as a user would run them, against a real dev server. */
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "@jest/globals";
import { API_KEY, startDevFixture, type DevFixture } from "../helpers/dev-fixture.js";
import { REPO_ROOT } from "../../services/coordinator/runtime-commands.js";

let podium: DevFixture;
beforeAll(async () => {
  podium = await startDevFixture();
});
afterAll(async () => {
  await podium.close();
});

it("examples/clients/connect-client.ts creates, streams, answers and stops", async () => {
  const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", path.join(REPO_ROOT, "examples/clients/connect-client.ts"), podium.url, "hi from the sdk"], {
    env: { ...process.env, PODIUM_API_KEY: API_KEY },
    timeout: 30_000,
  });
  expect(stdout).toContain("reply: hi from the sdk");
  expect(stdout).toMatch(/stream_start/);
  expect((await podium.api("GET", "/api/v1/instances")).json.instances).toEqual([]);
});
