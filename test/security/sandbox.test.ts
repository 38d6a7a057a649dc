/**
 * The attacker, end to end (issue: security): a hostile Python agent (test/security/attacker-py) run by a
 * real `podium dev` whose coordinator is root (CI runs as root) through real bubblewrap, cgroups, network
 * namespaces and loop-mounted disks. Each test asserts the attack fails and the platform and another
 * agent keep serving.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { startDevFixture, type DevFixture, type WsClient } from "../helpers/dev-fixture.js";
import { REPO_ROOT } from "../../services/coordinator/runtime-commands.js";
import { startRedis, type RedisServer } from "../helpers/redis-server.js";
import { bubblewrapProblem } from "../../services/coordinator/sandbox/sandbox.js";
import type { JsonObject } from "../../services/shared/json.js";

const root = process.getuid?.() === 0;
const bwrapProblem = bubblewrapProblem();
const run = root && !bwrapProblem ? describe : describe.skip;
if (!root || bwrapProblem) console.warn(`test/security/sandbox.test.ts skipped: ${!root ? "not root" : bwrapProblem}`);

const LIMITS = { pids: 64, memory_mb: 256, disk_mb: 64, idle_cpu_ms: 1500 };

let podium: DevFixture;
let agentsDir: string;
let redis: RedisServer;
let listener: net.Server;
let listenerPort: number;
const hostAddress = Object.values(os.networkInterfaces())
  .flat()
  .find((a) => a && a.family === "IPv4" && !a.internal)?.address;

/** Writes a bundle of the attacker with `manifest` fields into the agents dir. */
function bundle(name: string, extra: JsonObject): void {
  const dir = path.join(agentsDir, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(REPO_ROOT, "test/security/attacker-py/agent.py"), path.join(dir, "agent.py"));
  fs.writeFileSync(path.join(dir, "podium.json"), JSON.stringify({ name, version: "1.0.0", runtime: "python", entry: "agent.py", ...extra }));
}

beforeAll(async () => {
  if (!root || bwrapProblem) return;
  agentsDir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-attack-"));
  bundle("attacker", { limits: LIMITS });
  bundle("attacker-host", { network: "host" });
  bundle("attacker-offline", { network: "none" });
  fs.cpSync(path.join(REPO_ROOT, "examples/echo-py"), path.join(agentsDir, "echo-py"), { recursive: true });
  podium = await startDevFixture({ agentsDir });
  redis = await startRedis();
  listener = net.createServer((socket) => {
    socket.on("error", () => undefined); // agents hang up at once: a reset is expected
    socket.end("hello\n");
  });
  await new Promise<void>((resolve) => listener.listen(0, "0.0.0.0", resolve));
  listenerPort = (listener.address() as net.AddressInfo).port;
}, 60_000);

afterAll(async () => {
  if (!root || bwrapProblem) return;
  await podium?.close();
  await redis?.stop();
  listener?.close();
  fs.rmSync(agentsDir, { recursive: true, force: true });
});

async function create(deployment: string, body: JsonObject = {}): Promise<{ instanceId: string; pid: number; ws: WsClient }> {
  const created = await podium.api("POST", "/api/v1/instances", { deployment_id: `${deployment}:1.0.0@local`, ...body });
  expect(created.status).toBe(201);
  const instanceId = created.json.instance_id as string;
  return { instanceId, pid: created.json.pid as number, ws: await podium.connect(instanceId) };
}

/** Sends one probe and returns its result. */
async function probe(ws: WsClient, message: JsonObject, timeoutMs = 60_000): Promise<unknown> {
  const from = ws.frames.length;
  ws.send({ type: "process_message", content: message });
  const frame = await ws.waitFor((f) => ws.frames.indexOf(f) >= from && f.messageType === "stream_update" && (f.content as JsonObject).probe === message.probe, timeoutMs);
  return (frame.content as JsonObject).result;
}

/** The platform and an innocent agent still work. */
async function platformServes(): Promise<void> {
  expect((await podium.api("GET", "/healthz")).status).toBe(200);
  const echo = await create("echo-py");
  echo.ws.send({ type: "process_message", content: { text: "still here" } });
  await echo.ws.waitFor((f) => f.messageType === "stream_end", 30_000);
  expect((await podium.api("DELETE", `/api/v1/instances/${echo.instanceId}`)).status).toBe(200);
}

run("a hostile agent, coordinator running as root", () => {
  it("runs as an unprivileged user of its own, with no capabilities and no_new_privs", async () => {
    const a = await create("attacker");
    const b = await create("attacker");
    const status = (await probe(a.ws, { probe: "status" })) as Record<string, string>;
    expect(status.CapEff).toBe("0000000000000000");
    expect(status.CapPrm).toBe("0000000000000000");
    expect(status.CapBnd).toBe("0000000000000000");
    expect(status.NoNewPrivs).toBe("1");
    expect(status.Uid?.split(/\s+/)).toEqual(["1000", "1000", "1000", "1000"]);
    // Outside, the sandbox runs as an agent uid from the range — a different one for each agent.
    const outerUid = (pid: number) => Number(/^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);
    expect(outerUid(a.pid)).toBeGreaterThanOrEqual(600_000_000);
    expect(outerUid(b.pid)).toBeGreaterThanOrEqual(600_000_000);
    expect(outerUid(a.pid)).not.toBe(outerUid(b.pid));
  });

  it("cannot read /etc/shadow, the platform's data or another agent's workspace", async () => {
    const a = await create("attacker");
    const victim = await create("attacker");
    const victimInfo = await podium.api("GET", `/api/v1/instances/${victim.instanceId}`);
    const victimWorkspace = path.join(podium.dataDir, "agents", victimInfo.json.agent_id as string, "workspace");
    fs.writeFileSync(path.join(victimWorkspace, "secret.txt"), "victim's secret");
    expect(await probe(a.ws, { probe: "read", path: "/etc/shadow" })).toBe("denied:EACCES");
    expect(await probe(a.ws, { probe: "read", path: path.join(victimWorkspace, "secret.txt") })).toMatch(/^denied:/);
    expect(await probe(a.ws, { probe: "read", path: path.join(podium.dataDir, "registry") })).toMatch(/^denied:/);
    expect(await probe(a.ws, { probe: "read", path: path.join(REPO_ROOT, "package.json") })).toMatch(/^denied:/);
    await platformServes();
  });

  it("cannot open files by handle (shocker)", async () => {
    const a = await create("attacker");
    const result = (await probe(a.ws, { probe: "shocker" })) as Record<string, string>;
    expect(result.own).toBe("EPERM");
    if (result.root !== undefined) expect(result.root).toBe("EPERM");
  });

  it("refuses environment variables that change loaders or runtimes, naming them; others reach only the agent", async () => {
    for (const name of ["LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "NODE_OPTIONS", "BUN_OPTIONS", "PYTHONPATH", "PYTHONSTARTUP", "GLIBC_TUNABLES", "BASH_ENV", "PODIUM_AGENT_ID"]) {
      for (const field of ["environment", "secrets"]) {
        const res = await podium.api("POST", "/api/v1/instances", { deployment_id: "attacker:1.0.0@local", [field]: { [name]: "/tmp/evil.so" } });
        expect(res.status).toBe(400);
        expect(JSON.stringify(res.json)).toContain(name);
      }
    }
    const a = await create("attacker", { environment: { ATTACK_MODE: "1" }, secrets: { ATTACK_TOKEN: "s3cret" } });
    expect(await probe(a.ws, { probe: "env" })).toMatchObject({ ATTACK_MODE: "1", ATTACK_TOKEN: "s3cret", TMPDIR: "/tmp" });
    // Not in the environment of any host-side process: bwrap's own environment has none of it.
    expect(fs.readFileSync(`/proc/${a.pid}/environ`, "utf8")).not.toContain("ATTACK_");
  });

  it("reaches neither the gateway, Valkey, a loopback listener nor the host's address; with network host it does", async () => {
    const a = await create("attacker");
    const gatewayPort = Number(new URL(podium.url).port);
    const targets: [string, number][] = [
      ["127.0.0.1", gatewayPort],
      ["127.0.0.1", redis.port],
      ["127.0.0.1", listenerPort],
      ["10.0.2.2", listenerPort],
      ["169.254.169.254", 80],
      ...(hostAddress ? ([[hostAddress, listenerPort]] as [string, number][]) : []),
    ];
    for (const [host, port] of targets) {
      expect([host, port, await probe(a.ws, { probe: "connect", host, port, timeout: 2 })]).toEqual([host, port, expect.stringMatching(/^failed:/)]);
    }
    const offline = await create("attacker-offline");
    expect(await probe(offline.ws, { probe: "connect", host: "127.0.0.1", port: listenerPort })).toMatch(/^failed:/);
    const host = await create("attacker-host");
    expect(await probe(host.ws, { probe: "connect", host: "127.0.0.1", port: listenerPort })).toBe("connected");
    await platformServes();
  });

  it("cannot listen on the host's interfaces", async () => {
    const a = await create("attacker");
    const port = 20000 + Math.floor(Math.random() * 20000);
    expect(await probe(a.ws, { probe: "listen", port })).toBe("listening");
    const outcome = await new Promise<string>((resolve) => {
      const socket = net.connect({ host: "127.0.0.1", port }, () => resolve("connected"));
      socket.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? "error"));
      socket.setTimeout(3000, () => resolve("timeout"));
    });
    expect(outcome).not.toBe("connected");
  });

  it("a fork bomb stops at the pids limit", async () => {
    const a = await create("attacker");
    const result = (await probe(a.ws, { probe: "forkbomb", max: 1000 })) as { started: number; error: string | null };
    expect(result.started).toBeLessThan(LIMITS.pids);
    expect(result.error).toBe("EAGAIN");
    await platformServes();
  });

  it("a state patch that copies the state into itself over and over is refused past the state's size limit", async () => {
    const a = await create("attacker");
    // 14 copies of the root: 1 KiB becomes 16 MiB (within the 64 MiB limit); then 40 more would be 2^40 times that.
    expect(await probe(a.ws, { probe: "statebomb", pad: true, round: 1, copies: 14 })).toBe("sent");
    expect(await probe(a.ws, { probe: "statebomb", round: 2, copies: 40 })).toBe("sent");
    const logs = (await podium.api("GET", `/api/v1/instances/${a.instanceId}/logs`)).json.logs as JsonObject[];
    expect(logs.map((line) => line.message).filter((message) => String(message).startsWith("rejected state patch"))).toEqual([
      'rejected state patch: copy from "" would take the state past its size limit',
    ]);
    const { json } = await podium.api("GET", `/api/v1/instances/${a.instanceId}/state`);
    expect(Object.keys(json.state as JsonObject).filter((key) => key.startsWith("c2_"))).toEqual([]);
    await platformServes();
  }, 120_000);

  it("a memory hog split over 4 children is bounded for the whole tree", async () => {
    const a = await create("attacker");
    const result = await probe(a.ws, { probe: "memhog", n: 4, mb: 100 }).catch((err: unknown) => String(err));
    // Either some children were OOM-killed, or the whole agent was (then the socket reports terminated).
    if (Array.isArray(result)) expect(result.filter((r) => r === "ok").length).toBeLessThan(4);
    await platformServes();
  });

  it("fills neither the host's disk nor its RAM through HOME, /tmp or the workspace", async () => {
    const a = await create("attacker");
    for (const dir of ["/tmp", "$HOME", "."]) {
      const target = dir === "$HOME" ? String(((await probe(a.ws, { probe: "env" })) as JsonObject).HOME) : dir;
      const result = (await probe(a.ws, { probe: "fill", dir: target, max_mb: 512 }, 120_000)) as { written_mb: number; error: string | null };
      expect([dir, result.error]).toEqual([dir, expect.stringMatching(/^(ENOSPC|EDQUOT|EFBIG)$/)]);
      expect(result.written_mb).toBeLessThanOrEqual(LIMITS.disk_mb);
    }
    await platformServes();
  }, 240_000);

  it("an agent that spins between turns is killed past its idle CPU budget", async () => {
    const a = await create("attacker");
    expect(await probe(a.ws, { probe: "spin" })).toBe("spinning");
    const terminated = await a.ws.waitFor((f) => f.messageType === "terminated", 60_000);
    expect(JSON.stringify(terminated.content)).toContain("CPU");
    await platformServes();
  }, 90_000);
});
