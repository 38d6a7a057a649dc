/**
 * Warm runners (services/coordinator/runner-pool.ts) keep isolation exactly as strong as a cold start:
 * the hostile agent of test/security/attacker-py, served from the pool by a real `podium dev` whose
 * coordinator is root, through real bubblewrap, cgroups, network namespaces and loop-mounted disks.
 * Also: the deployment's code and variables reach a runner spawned before anyone asked for it, the
 * bundle it is given stays read-only, and nothing of an unclaimed runner outlives the server.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startDevFixture, type DevFixture, type WsClient } from "../helpers/dev-fixture.js";
import { REPO_ROOT } from "../../services/coordinator/runtime-commands.js";
import { bubblewrapProblem } from "../../services/coordinator/sandbox/sandbox.js";
import { createDevServer } from "../../services/dev/create-dev-server.js";
import { silentLogger } from "../../services/shared/logger.js";
import { readMountTable } from "../../services/coordinator/sandbox/mount-table.js";
import type { JsonObject } from "../../services/shared/json.js";

const root = process.getuid?.() === 0;
const bwrapProblem = bubblewrapProblem();
const run = root && !bwrapProblem ? describe : describe.skip;
if (!root || bwrapProblem) console.warn(`test/security/warm-runner.test.ts skipped: ${!root ? "not root" : bwrapProblem}`);

let podium: DevFixture;
let agentsDir: string;

beforeAll(async () => {
  if (!root || bwrapProblem) return;
  agentsDir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-warm-"));
  // No limits and no network policy of its own: the coordinator's defaults, so warm runners serve it.
  const dir = path.join(agentsDir, "attacker");
  fs.mkdirSync(dir);
  fs.copyFileSync(path.join(REPO_ROOT, "test/security/attacker-py/agent.py"), path.join(dir, "agent.py"));
  fs.writeFileSync(path.join(dir, "podium.json"), JSON.stringify({ name: "attacker", version: "1.0.0", runtime: "python", entry: "agent.py" }));
  fs.cpSync(path.join(REPO_ROOT, "examples/echo-ts"), path.join(agentsDir, "echo-ts"), { recursive: true });
  podium = await startDevFixture({ agentsDir, coordinator: { warmRunners: 2 } });
}, 60_000);

afterAll(async () => {
  if (!root || bwrapProblem) return;
  await podium?.close();
  fs.rmSync(agentsDir, { recursive: true, force: true });
});

const stats = () => podium.server.coordinator.manager.warmRunnerStats();

async function until(check: () => boolean, what: string, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function create(deployment: string, body: JsonObject = {}): Promise<{ instanceId: string; agentId: string; pid: number; ws: WsClient }> {
  const created = await podium.api("POST", "/api/v1/instances", { deployment_id: `${deployment}:1.0.0@local`, ...body });
  expect(created.status).toBe(201);
  const instanceId = created.json.instance_id as string;
  return { instanceId, agentId: created.json.agent_id as string, pid: created.json.pid as number, ws: await podium.connect(instanceId) };
}

async function probe(ws: WsClient, message: JsonObject): Promise<unknown> {
  const from = ws.frames.length;
  ws.send({ type: "process_message", content: message });
  const frame = await ws.waitFor((f) => ws.frames.indexOf(f) >= from && f.messageType === "stream_update" && (f.content as JsonObject).probe === message.probe, 60_000);
  return (frame.content as JsonObject).result;
}

/** Two creates served by warm runners (the first create of the runtime starts its pool, cold). */
async function claimTwo(deployment: string, runtime: "python" | "typescript", body: JsonObject = {}) {
  if (stats().ready[runtime] === 0) await create(deployment);
  await until(() => stats().ready[runtime] === 2, `two warm ${runtime} runners`);
  const claimsBefore = stats().claims;
  const a = await create(deployment, body);
  const b = await create(deployment, body);
  expect(stats().claims).toBe(claimsBefore + 2);
  return [a, b] as const;
}

run("warm runners, coordinator running as root", () => {
  it("serve a new agent with the same isolation as a cold start: own unprivileged uid, no capabilities", async () => {
    const [a, b] = await claimTwo("attacker", "python");
    const status = (await probe(a.ws, { probe: "status" })) as Record<string, string>;
    expect(status.CapEff).toBe("0000000000000000");
    expect(status.CapBnd).toBe("0000000000000000");
    expect(status.NoNewPrivs).toBe("1");
    expect(status.Uid?.split(/\s+/)).toEqual(["1000", "1000", "1000", "1000"]);
    const outerUid = (pid: number) => Number(/^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);
    expect(outerUid(a.pid)).toBeGreaterThanOrEqual(600_000_000);
    expect(outerUid(a.pid)).not.toBe(outerUid(b.pid));
    // Another agent's workspace, the platform's data, the host's secrets: out of reach.
    const victimWorkspace = path.join(podium.dataDir, "agents", b.agentId, "workspace");
    fs.writeFileSync(path.join(victimWorkspace, "secret.txt"), "victim's secret");
    expect(await probe(a.ws, { probe: "read", path: path.join(victimWorkspace, "secret.txt") })).toMatch(/^denied:/);
    expect(await probe(a.ws, { probe: "read", path: "/etc/shadow" })).toBe("denied:EACCES");
    expect(await probe(a.ws, { probe: "read", path: path.join(podium.dataDir, "registry") })).toMatch(/^denied:/);
    expect(await probe(a.ws, { probe: "read", path: path.join(podium.dataDir, "bundles") })).toMatch(/^denied:/);
    expect(await probe(a.ws, { probe: "connect", host: "127.0.0.1", port: Number(new URL(podium.url).port), timeout: 2 })).toMatch(/^failed:/);
  });

  it("give the runner its deployment's code, id and variables, and keep the linked bundle read-only", async () => {
    const [a] = await claimTwo("attacker", "python", { environment: { ATTACK_MODE: "warm" }, secrets: { ATTACK_TOKEN: "s3cret" } });
    const env = (await probe(a.ws, { probe: "env" })) as Record<string, string>;
    expect(env).toMatchObject({ ATTACK_MODE: "warm", ATTACK_TOKEN: "s3cret", PODIUM_DEPLOYMENT_ID: "attacker:1.0.0@local", PODIUM_AGENT_ID: a.agentId, TMPDIR: "/tmp" });
    expect(fs.readFileSync(`/proc/${a.pid}/environ`, "utf8")).not.toContain("ATTACK_");
    const bundleDir = path.join(podium.dataDir, "agents", a.agentId, "bundle");
    expect(await probe(a.ws, { probe: "read", path: path.join(bundleDir, "podium.json") })).toMatch(/^read:\{"name":"attacker"/);
    const written = (await probe(a.ws, { probe: "fill", dir: bundleDir, max_mb: 1 })) as { written_mb: number; error: string | null };
    expect(written.error).toMatch(/^(EROFS|EACCES)$/);
    const instance = await podium.api("GET", `/api/v1/instances/${a.instanceId}`);
    expect(instance.json.deployment_id).toBe("attacker:1.0.0@local");
    // Its links go when the instance ends; the agent itself stays (it resumes cold, from the real bundle).
    expect((await podium.api("DELETE", `/api/v1/instances/${a.instanceId}`)).status).toBe(200);
    await until(() => !fs.existsSync(bundleDir), "the bundle links to go");
    const resumed = await create("attacker", { agent_id: a.agentId });
    expect(((await probe(resumed.ws, { probe: "env" })) as Record<string, string>).PODIUM_AGENT_ID).toBe(a.agentId);
  });

  it("serve TypeScript agents too: state, streaming and turns as from a cold start", async () => {
    const [a] = await claimTwo("echo-ts", "typescript");
    a.ws.send({ type: "process_message", content: { text: "warm hello" } });
    // turn.done, not the agent's own stream_end: the turn's state delta is recorded between the two.
    await a.ws.waitFor((f) => f.messageType === "turn.done", 30_000);
    const text = a.ws.frames
      .filter((f) => f.messageType === "stream_update")
      .map((f) => (f.content as JsonObject).text)
      .join("");
    expect(text).toBe("warm hello");
    const state = await podium.api("GET", `/api/v1/instances/${a.instanceId}/state`);
    expect(state.status).toBe(200);
    expect(JSON.stringify(state.json)).toContain('"turns":1');
  });
});

run("warm runners at close and after a crash", () => {
  it("leave no process, mount or directory behind when the server closes, and left-overs of a killed run are removed", async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-warm-close-"));
    fs.chmodSync(dataDir, 0o711);
    const agentsDir = path.join(dataDir, "agents");
    const register = path.join(dataDir, "sandbox", "warm");
    fs.mkdirSync(register, { recursive: true, mode: 0o700 });
    // What a coordinator killed with -9 leaves: an unclaimed runner, registered (its volume was unmounted by the sweep).
    const leftover = path.join(agentsDir, "agent-leftoverwarm0001");
    fs.mkdirSync(path.join(leftover, "bundle"), { recursive: true });
    fs.writeFileSync(path.join(register, "agent-leftoverwarm0001"), "");
    // What the sweep must never remove: an agent that started (a claim whose unregister a crash lost), and
    // agents whose own directories hold a `warm-runner` entry (a file restore can write there).
    const { AgentStore } = await import("../../services/coordinator/store/agent-store.js");
    const started = AgentStore.open({ dir: path.join(agentsDir, "agent-claimedwarm00001") });
    started.logs.append({ level: "info", source: "platform", message: "instance starting", instanceId: "inst-x" });
    started.close();
    fs.writeFileSync(path.join(register, "agent-claimedwarm00001"), "");
    fs.mkdirSync(path.join(agentsDir, "victim", "warm-runner"), { recursive: true });
    fs.mkdirSync(path.join(agentsDir, "agent-victimvictim0001", "workspace"), { recursive: true });
    fs.symlinkSync("/etc", path.join(agentsDir, "agent-victimvictim0001", "warm-runner"));
    const server = await createDevServer({ port: 0, dataDir, agentsDir: path.join(REPO_ROOT, "examples"), logger: silentLogger, coordinator: { warmRunners: 2 } });
    try {
      const res = await fetch(`${server.url}/api/v1/instances`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ deployment_id: "echo-py:1.0.0@local" }) });
      expect(res.status).toBe(201);
      await until(() => server.coordinator.manager.warmRunnerStats().ready.python === 2, "two warm runners");
      expect(fs.existsSync(leftover)).toBe(false);
      // An unclaimed runner's id cannot be taken by a create that names it.
      const warmId = fs.readdirSync(register).find((name) => name.startsWith("agent-"));
      expect(warmId).toBeDefined();
      const named = await fetch(`${server.url}/api/v1/instances`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ deployment_id: "echo-py:1.0.0@local", agent_id: warmId }),
      });
      expect(named.status).toBe(409);
    } finally {
      await server.close();
    }
    // The created agent, and the three the sweep must not touch; both unclaimed runners are gone.
    expect(fs.readdirSync(agentsDir).sort()).toEqual(expect.arrayContaining(["agent-claimedwarm00001", "agent-victimvictim0001", "victim"]));
    expect(fs.readdirSync(agentsDir)).toHaveLength(4);
    expect(fs.readdirSync(register)).toEqual([]);
    expect(readMountTable().filter((m) => m.mountPoint.startsWith(dataDir))).toEqual([]);
    const left = fs
      .readdirSync("/proc")
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          return fs.readlinkSync(`/proc/${p}/cwd`).startsWith(dataDir);
        } catch {
          return false;
        }
      });
    expect(left).toEqual([]);
    fs.rmSync(dataDir, { recursive: true, force: true });
  }, 120_000);
});
