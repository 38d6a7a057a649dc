/** The `podium` command as a user runs it: dev mode start-up line, deploy, clean exit on signals. */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "@jest/globals";
import { REPO_ROOT } from "../../services/coordinator/runtime-commands.js";
import { isProcessAlive, removeDataDir } from "../helpers/dev-fixture.js";

const BIN = path.join(REPO_ROOT, "bin/podium.js");
const KEY = "cli-test-key";
const children: ChildProcess[] = [];
const dirs: string[] = [];

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill("SIGKILL");
  for (const dir of dirs.splice(0)) removeDataDir(dir);
});

function run(args: string[], env: Record<string, string> = {}): { child: ChildProcess; stdout: () => string; stderr: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, PODIUM_API_KEY: KEY, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let out = "";
  let err = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (err += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exit };
}

async function waitForUrl(stdout: () => string, timeoutMs = 20_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout());
    if (match?.[1]) return match[1];
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no listening line; stdout: ${stdout()}`);
}

describe("podium CLI", () => {
  it.each(["SIGTERM", "SIGINT"] as const)("dev mode deploys, serves, and on %s stops every agent and exits 0", async (signal) => {
    const data = fs.mkdtempSync(path.join(os.tmpdir(), "podium-cli-"));
    dirs.push(data);
    const dev = run(["dev", "--port", "0", "--data", data, "--agents", path.join(REPO_ROOT, "examples")]);
    const url = await waitForUrl(dev.stdout);
    const deployed = run(["deploy", path.join(REPO_ROOT, "test/fixtures/bundles/faulty-py"), "--url", url]);
    expect(await deployed.exit).toBe(0);
    expect(JSON.parse(deployed.stdout()).deployment_id).toBe("faulty-py:1.0.0@local");
    const pids: number[] = [];
    for (const deployment of ["echo-ts:1.0.0@local", "faulty-py:1.0.0@local"]) {
      const res = await fetch(`${url}/api/v1/instances`, {
        method: "POST",
        headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
        body: JSON.stringify({ deployment_id: deployment }),
      });
      const body = (await res.json()) as { pid: number };
      expect({ status: res.status, body }).toMatchObject({ status: 201, body: { deployment_id: deployment } });
      pids.push(body.pid);
    }
    for (const pid of pids) expect(isProcessAlive(pid)).toBe(true);
    dev.child.kill(signal);
    expect(await dev.exit).toBe(0);
    for (const pid of pids) expect(isProcessAlive(pid)).toBe(false);
  });

  it("deploy reports a missing manifest clearly and exits 1", async () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), "podium-empty-"));
    dirs.push(empty);
    const deployed = run(["deploy", empty, "--url", "http://127.0.0.1:9"]);
    expect(await deployed.exit).toBe(1);
    expect(deployed.stderr()).toContain("has no podium.json");
  });

  it.each([
    ["coordinator", "--log-level", "chatty"],
    ["gateway", "--log-level", "chatty", "--insecure-no-auth"],
    ["dev", "--log-level", "chatty"],
  ])("%s refuses a bad --log-level with a clear error", async (...args) => {
    const bad = run(args);
    expect(await bad.exit).not.toBe(0);
    expect(bad.stderr()).toContain("--log-level must be debug, info, warn, error or silent, got chatty");
  });

  it("an unknown command prints usage and exits 2", async () => {
    const bad = run(["frobnicate"]);
    expect(await bad.exit).toBe(2);
    expect(bad.stderr()).toContain("Usage:");
  });
});
