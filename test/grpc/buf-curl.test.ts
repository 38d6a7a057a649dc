/**
 * The real `buf curl` CLI (node_modules/.bin/buf, a native binary; no network needed) against a
 * connect-node h2c server: it discovers everything through our reflection service.
 */
import { describe, it, expect, beforeAll, afterAll } from "@jest/globals";
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { HealthStatusRegistry, ServingStatus } from "../../services/shared/grpc-health.js";
import { KNOWN_INSTANCE_ID, podiumTestRoutes, startTestServer, type TestServer } from "./grpc-test-server.js";

const run = promisify(execFile);
const BUF = path.resolve("node_modules/.bin/buf");

describe("buf curl through gRPC reflection", () => {
  let health: HealthStatusRegistry;
  let server: TestServer;
  let cacheDir: string;

  beforeAll(async () => {
    health = new HealthStatusRegistry({ "podium.v1.InstanceService": ServingStatus.SERVING });
    server = await startTestServer(podiumTestRoutes(health));
    cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-"));
  });

  afterAll(async () => {
    health.close();
    await server.close();
    fs.rmSync(cacheDir, { recursive: true, force: true });
  });

  async function bufCurl(...args: string[]): Promise<string> {
    const { stdout } = await run(BUF, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", ...args], {
      timeout: 20_000,
      killSignal: "SIGKILL",
      env: { ...process.env, BUF_CACHE_DIR: cacheDir, NO_COLOR: "1" },
    });
    return stdout;
  }

  it("--list-methods lists Podium, health and reflection methods", async () => {
    const methods = (await bufCurl("--list-methods", server.url)).split("\n").filter((line) => line !== "");
    expect(methods).toEqual(
      expect.arrayContaining([
        "podium.v1.InstanceService/GetInstance",
        "podium.v1.InstanceService/StreamUpdates",
        "grpc.health.v1.Health/Check",
        "grpc.health.v1.Health/Watch",
        "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
      ]),
    );
  });

  it("calls GetInstance with a JSON body, using only the reflected schema", async () => {
    const out = await bufCurl("-d", JSON.stringify({ instance_id: KNOWN_INSTANCE_ID }), `${server.url}/podium.v1.InstanceService/GetInstance`);
    const body: unknown = JSON.parse(out);
    expect(body).toMatchObject({
      instance: {
        instanceId: KNOWN_INSTANCE_ID,
        status: "INSTANCE_STATUS_READY",
        createdAt: "2025-01-02T03:04:05Z",
      },
    });
  });

  it("checks health", async () => {
    const out = await bufCurl("-d", JSON.stringify({ service: "podium.v1.InstanceService" }), `${server.url}/grpc.health.v1.Health/Check`);
    expect(JSON.parse(out)).toEqual({ status: "SERVING" });
  });

  it("reports NOT_FOUND from the server as a failed call", async () => {
    const failed = bufCurl("-d", JSON.stringify({ instance_id: "inst-404" }), `${server.url}/podium.v1.InstanceService/GetInstance`);
    await expect(failed).rejects.toMatchObject({ stderr: expect.stringContaining("not_found") });
  });
});
