/**
 * Reliability figures of the cluster path (issue 12), with real processes: redis-server, s3rver, three
 * `podium coordinator` and one `podium gateway`.
 *   - gateway RSS with 100 paused WebSocket readers, against the same gateway with 100 active readers
 *     of the same flood (goal: at most 16 MiB more per paused reader);
 *   - create success during a coordinator's death window: kill -9 of a coordinator, then creates while
 *     it is still in the gateway's view (goal: 100 % answered 201, no agent started twice).
 */
import fs from "node:fs";
import path from "node:path";
import type { WebSocket } from "ws";
import { packBundle } from "../services/registry/bundle-archive.js";
import { REPO_ROOT } from "../services/coordinator/runtime-commands.js";
import type { JsonObject } from "../services/shared/json.js";
import { startCluster, type PodiumProcess, type TestCluster } from "../test/helpers/cluster-processes.js";
import { openWebSocket } from "./ws-exchange.js";
import { percentile, printTable, type BenchResults } from "./bench-util.js";

export interface ReliabilityBenchOptions {
  readers?: number;
  /** Readers share this many flood instances. */
  instances?: number;
  /** Events per flood and their text size: enough that a paused reader fills every buffer on the way. */
  events?: number;
  eventBytes?: number;
  /** Creates sent while the killed coordinator is still in the gateway's view. */
  creates?: number;
}

const MiB = 1024 * 1024;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
  return match ? Number(match[1]) * 1024 : NaN;
}

/** Samples a process's RSS every 100 ms until stopped; resolves with the peak. */
function rssPeak(pid: number): { stop(): number } {
  let peak = rssBytes(pid);
  const timer = setInterval(() => (peak = Math.max(peak, rssBytes(pid))), 100);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, rssBytes(pid));
    },
  };
}

async function createInstances(cluster: TestCluster, gateway: string, deploymentId: string, count: number): Promise<JsonObject[]> {
  const created: JsonObject[] = [];
  for (let i = 0; i < count; i += 8) {
    const batch = await Promise.all(Array.from({ length: Math.min(8, count - i) }, () => cluster.api(gateway, "POST", "/api/v1/instances", { deployment_id: deploymentId })));
    for (const res of batch) {
      if (res.status !== 201) throw new Error(`create failed: ${res.status} ${JSON.stringify(res.json)}`);
      created.push(res.json);
    }
  }
  return created;
}

/** Opens `readers` sockets spread over the instances; `paused` ones stop reading at once. */
async function openReaders(cluster: TestCluster, gateway: string, instances: JsonObject[], readers: number, paused: boolean): Promise<WebSocket[]> {
  return Promise.all(
    Array.from({ length: readers }, async (_, n) => {
      const instance = instances[n % instances.length] as JsonObject;
      const ws = await openWebSocket(`${gateway.replace(/^http/, "ws")}/api/v1/instances/${String(instance.instance_id)}/connect?api_key=${cluster.apiKey}`);
      if (paused) ws.pause();
      return ws;
    }),
  );
}

/** One flood per instance (sent on its first socket); resolves when every active reader got its turn.done. */
async function flood(sockets: WebSocket[], instances: number, events: number, eventBytes: number, awaitEnd: boolean): Promise<void> {
  const ended = awaitEnd ? sockets.map((ws) => new Promise<void>((resolve) => ws.on("message", (data: Buffer) => data.includes('"turn.done"') && resolve()))) : [];
  const text = "x".repeat(eventBytes);
  for (let i = 0; i < instances; i++) sockets[i]?.send(JSON.stringify({ type: "process_message", content: { n: events, text } }));
  await Promise.all(ended);
}

async function pausedReaderFigures(cluster: TestCluster, gateway: PodiumProcess, options: Required<ReliabilityBenchOptions>): Promise<BenchResults> {
  const { readers, instances, events, eventBytes } = options;
  const flooders = await createInstances(cluster, gateway.url, "flood-ts:1.0.0", instances);
  await sleep(1000);
  const idle = rssBytes(gateway.pid);

  // 100 readers that read nothing, on a fresh gateway: it stops pulling at its bound, then closes them (4008).
  const paused = await openReaders(cluster, gateway.url, flooders, readers, true);
  const closes = paused.map((ws) => new Promise<number>((resolve) => ws.once("close", (code) => resolve(code))));
  let sampler = rssPeak(gateway.pid);
  await flood(paused, instances, events, eventBytes, false);
  const closedAt = await waitForMetric(cluster, gateway.url, "podium_gateway_ws_slow_closes_total", readers, 120_000);
  const pausedPeak = sampler.stop();
  for (const ws of paused) ws.resume(); // read what was buffered, then the close frame
  const codes = await Promise.all(closes);
  await sleep(2000);

  // 100 readers that read everything: the gateway's working set while it streams the same floods.
  const active = await openReaders(cluster, gateway.url, flooders, readers, false);
  sampler = rssPeak(gateway.pid);
  const activeStart = Date.now();
  await flood(active, instances, events, eventBytes, true);
  const activeMs = Date.now() - activeStart;
  const activePeak = sampler.stop();
  for (const ws of active) ws.close();
  return {
    [`readers (paused, then active) over ${instances} flood instances`]: readers,
    [`events per flood (${eventBytes} bytes of text each)`]: events,
    "gateway RSS idle MiB": idle / MiB,
    "gateway RSS peak with 100 active readers MiB (baseline)": activePeak / MiB,
    "  active readers: flood delivered to all in ms": activeMs,
    "gateway RSS peak with 100 paused readers MiB": pausedPeak / MiB,
    "MiB per paused reader over the active baseline (goal <= 16)": (pausedPeak - activePeak) / readers / MiB,
    "MiB per paused reader over idle": (pausedPeak - idle) / readers / MiB,
    "paused readers closed with 4008 (too slow) within s": closedAt / 1000,
    "paused readers that got 4008": codes.filter((c) => c === 4008).length,
  };
}

async function waitForMetric(cluster: TestCluster, gateway: string, name: string, atLeast: number, timeoutMs: number): Promise<number> {
  const start = Date.now();
  for (;;) {
    const res = await fetch(`${gateway}/metrics`, { headers: { authorization: `Bearer ${cluster.apiKey}` } });
    const line = (await res.text()).split("\n").find((l) => l.startsWith(`${name} `));
    if (line && Number(line.split(" ")[1]) >= atLeast) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`${name} did not reach ${atLeast} within ${timeoutMs} ms`);
    await sleep(250);
  }
}

async function deathWindowFigures(cluster: TestCluster, gateway: string, creates: number): Promise<BenchResults> {
  const [victim, ...survivors] = cluster.coordinators as [PodiumProcess, ...PodiumProcess[]];
  const live = async (): Promise<Set<string>> => {
    const list = await cluster.api(gateway, "GET", "/api/v1/instances");
    if (list.status !== 200) throw new Error(`listing instances failed: ${list.status} ${JSON.stringify(list.json)}`);
    return new Set((list.json.instances as JsonObject[]).map((i) => String(i.instance_id)));
  };
  const post = async (): Promise<{ status: number; id: string; coordinator: string; ms: number }> => {
    const start = Date.now();
    const res = await cluster.api(gateway, "POST", "/api/v1/instances", { deployment_id: "echo-ts:1.0.0" });
    return { status: res.status, id: String(res.json.instance_id ?? ""), coordinator: String(res.json.coordinator_id ?? ""), ms: Date.now() - start };
  };
  // The same burst with every coordinator up, as the baseline for how long creates take on this host.
  const baseline = await Promise.all(Array.from({ length: creates }, post));
  await Promise.all(baseline.map((r) => cluster.api(gateway, "DELETE", `/api/v1/instances/${r.id}?grace_ms=0`)));
  const before = await live();
  const inFlight = Array.from({ length: Math.floor(creates / 4) }, post);
  await sleep(20);
  const killedAt = Date.now();
  await victim.kill();
  const after = await Promise.all(Array.from({ length: creates - inFlight.length }, post));
  const results = [...(await Promise.all(inFlight)), ...after];
  const windowMs = Date.now() - killedAt;
  const ok = results.filter((r) => r.status === 201);
  const added = [...(await live())].filter((id) => !before.has(id));
  const acknowledged = new Set(ok.map((r) => r.id));
  return {
    "creates during the death window (kill -9 while in the gateway's view)": results.length,
    "create success % (goal 100)": (100 * ok.length) / results.length,
    "  creates answered on the victim": ok.filter((r) => r.coordinator === victim.id).length,
    "  create p50 ms": percentile(
      results.map((r) => r.ms),
      50,
    ),
    "  slowest create ms": Math.max(...results.map((r) => r.ms)),
    "  same burst with every coordinator up: p50 ms (baseline)": percentile(
      baseline.map((r) => r.ms),
      50,
    ),
    "  same burst with every coordinator up: slowest ms": Math.max(...baseline.map((r) => r.ms)),
    "  all answered within ms of the kill": windowMs,
    "agents started that no client was told about (goal 0)": added.filter((id) => !acknowledged.has(id)).length,
    "survivors": survivors.length,
  };
}

export async function runReliabilityBench(options: ReliabilityBenchOptions = {}): Promise<BenchResults> {
  const compiled: Required<ReliabilityBenchOptions> = {
    readers: options.readers ?? 100,
    instances: options.instances ?? 10,
    events: options.events ?? 6000,
    eventBytes: options.eventBytes ?? 1000,
    creates: options.creates ?? 20,
  };
  const cluster = await startCluster({ coordinators: 3, gateways: 1 });
  try {
    const gateway = cluster.gateways[0] as PodiumProcess;
    for (const dir of ["test/fixtures/bundles/flood-ts", "examples/echo-ts"]) {
      const deployed = await cluster.api(gateway.url, "POST", "/api/v1/deployments", await packBundle(path.join(REPO_ROOT, dir)));
      if (deployed.status >= 300) throw new Error(`deploy failed: ${deployed.status} ${JSON.stringify(deployed.json)}`);
    }
    const readers = await pausedReaderFigures(cluster, gateway, compiled);
    if (process.env.PODIUM_BENCH_VERBOSE) printTable("slow readers", readers);
    const window = await deathWindowFigures(cluster, gateway.url, compiled.creates);
    return { ...readers, ...window };
  } finally {
    await cluster.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  printTable("reliability: slow readers and a coordinator's death window", await runReliabilityBench());
}
