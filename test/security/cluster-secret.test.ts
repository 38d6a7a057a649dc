/**
 * A coordinator never serves CreateInstance unauthenticated beyond loopback: without a cluster secret it
 * refuses a non-loopback address (as `podium dev` and `podium gateway` refuse without an API key), unless
 * told `insecureNoAuth`; with a secret, a caller without it gets UNAUTHENTICATED. Also the environment
 * rule and the uid allocation, as plain units.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createCoordinator, isLoopbackHost, type Coordinator } from "../../services/coordinator/create-coordinator.js";
import { LocalRegistry } from "../../services/registry/local-registry.js";
import { silentLogger } from "../../services/shared/logger.js";
import { InstanceService } from "../../gen/podium/v1/instance_service_pb.js";
import { refusedEnvName } from "../../services/coordinator/agent-env.js";
import { AgentUids, parseUidRange } from "../../services/coordinator/sandbox/agent-uids.js";
import { runCoordinator } from "../../services/coordinator/main.js";

const open: Coordinator[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function coordinator(options: { clusterSecret?: string; insecureNoAuth?: boolean }): Coordinator {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-secret-"));
  dirs.push(dataDir);
  // Only the listen check matters here: no agent runs, so the sandbox may be absent on this host.
  const c = createCoordinator({ dataDir, registry: new LocalRegistry({ dir: path.join(dataDir, "registry") }), logger: silentLogger, sandbox: "none", cgroups: false, diskVolumes: false, ...options });
  open.push(c);
  return c;
}

describe("cluster secret", () => {
  it("refuses a non-loopback address without a secret, naming the fix", async () => {
    await expect(coordinator({}).listen(0, "0.0.0.0")).rejects.toThrow(/PODIUM_CLUSTER_SECRET/);
  });

  it("podium coordinator --host 0.0.0.0 without PODIUM_CLUSTER_SECRET fails at start", async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-secret-"));
    dirs.push(dataDir);
    await expect(runCoordinator(["--host", "0.0.0.0", "--port", "0", "--data", dataDir, "--unsandboxed"], { PATH: process.env.PATH })).rejects.toThrow(/cluster secret/);
  });

  it("serves loopback without a secret, and anything with --insecure-no-auth", async () => {
    expect(await coordinator({}).listen(0, "127.0.0.1")).toBeGreaterThan(0);
    expect(await coordinator({ insecureNoAuth: true }).listen(0, "0.0.0.0")).toBeGreaterThan(0);
  });

  it("with a secret, a caller without it cannot create instances", async () => {
    const port = await coordinator({ clusterSecret: "s3cret-0123456789" }).listen(0, "0.0.0.0");
    const client = createClient(InstanceService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
    const err = await client.createInstance({ deploymentId: "echo-py:1.0.0" }).catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Unauthenticated);
  });

  it("knows loopback hosts", () => {
    expect(["127.0.0.1", "127.0.0.2", "localhost", "::1"].map(isLoopbackHost)).toEqual([true, true, true, true]);
    expect(["0.0.0.0", "::", "10.0.0.1", "example.com"].map(isLoopbackHost)).toEqual([false, false, false, false]);
  });
});

describe("agent environment and identities", () => {
  it("refuses loader and runtime variables, accepts ordinary ones", () => {
    for (const name of ["LD_PRELOAD", "LD_AUDIT", "DYLD_INSERT_LIBRARIES", "NODE_OPTIONS", "BUN_INSTALL", "PYTHONPATH", "PYTHONHOME", "GLIBC_TUNABLES", "BASH_ENV", "PODIUM_X", "1BAD", "A-B"]) {
      expect([name, refusedEnvName(name)]).toEqual([name, expect.any(String)]);
    }
    for (const name of ["OPENAI_API_KEY", "MODE", "NODE_ENV", "PATH", "HTTPS_PROXY"]) expect(refusedEnvName(name)).toBeUndefined();
  });

  it("gives every agent its own uid from the range, the same one after a restart", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-uids-"));
    dirs.push(dir);
    const range = parseUidRange("700000-700003");
    const uids = new AgentUids(dir, range);
    const assigned = ["a", "b", "c", "d"].map((id) => uids.uidFor(id));
    expect(new Set(assigned).size).toBe(4);
    expect(assigned.every((uid) => uid >= 700000 && uid <= 700003)).toBe(true);
    expect(new AgentUids(dir, range).uidFor("c")).toBe(assigned[2]);
    expect(() => uids.uidFor("e")).toThrow(/widen --agent-uids/);
    expect(() => parseUidRange("5-1")).toThrow(/FIRST-LAST/);
  });
});
