/**
 * Hibernation through the real gateway of `podium dev` (full isolation): wake -> first reply of a
 * hibernated instance (a message to it, until its reply's first `stream_update`), beside create -> first
 * reply of a new agent measured in the same run, for TypeScript and Python; and the coordinator's memory
 * per hibernated instance (N instances created, hibernated, RSS and heap compared with before).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import v8 from "node:v8";
import vm from "node:vm";
import type { WebSocket } from "ws";
import { createDevServer, type DevServer } from "../services/dev/create-dev-server.js";
import { REPO_ROOT } from "../services/coordinator/runtime-commands.js";
import { createLogger } from "../services/shared/logger.js";
import { printTable, summarize, type BenchResults } from "./bench-util.js";
import { openWebSocket } from "./ws-exchange.js";
import { InstanceRegistry } from "../services/coordinator/instance-registry.js";

const silentLogger = createLogger({ level: "silent" });
const HIBERNATE_AFTER_MS = 200;

v8.setFlagsFromString("--expose_gc");
const gc = vm.runInNewContext("gc") as () => void;

async function api(server: DevServer, method: string, url: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(server.url + url, { method, headers: { "content-type": "application/json" }, ...(body ? { body: JSON.stringify(body) } : {}) });
  const json = (await res.json()) as Record<string, unknown>;
  if (res.status >= 300) throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/** Resolves with the time from now until a frame containing `needle` arrives. */
function nextFrame(ws: WebSocket, needle: string): Promise<void> {
  return new Promise((resolve) => {
    const onMessage = (data: Buffer) => {
      if (!data.toString().includes(needle)) return;
      ws.off("message", onMessage);
      resolve();
    };
    ws.on("message", onMessage);
  });
}

async function wakeSamples(server: DevServer, deployment: string, runs: number, wakes = true): Promise<{ wake: number[]; create: number[] }> {
  const wake: number[] = [];
  const create: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    const { instance_id: id } = (await api(server, "POST", "/api/v1/instances", { deployment_id: deployment })) as { instance_id: string };
    const ws = await openWebSocket(`${server.url.replace("http", "ws")}/api/v1/instances/${id}/connect`);
    const replied = nextFrame(ws, '"stream_update"');
    ws.send(JSON.stringify({ type: "process_message", content: { text: "hello" } }));
    await replied;
    create.push(performance.now() - start);
    if (!wakes) {
      ws.close();
      await api(server, "DELETE", `/api/v1/instances/${id}`);
      continue;
    }
    await nextFrame(ws, '"hibernated"');
    // Its teardown (final sync, unmount, cgroup) is over, as it would be long after it fell asleep.
    await new Promise((resolve) => setTimeout(resolve, 150));
    const woken = performance.now();
    const again = nextFrame(ws, '"stream_update"');
    ws.send(JSON.stringify({ type: "process_message", content: { text: "again" } }));
    await again;
    wake.push(performance.now() - woken);
    ws.close();
    await api(server, "DELETE", `/api/v1/instances/${id}`);
  }
  return { wake, create };
}

async function hibernatedMemory(server: DevServer, count: number): Promise<BenchResults> {
  gc();
  const before = { rss: process.memoryUsage().rss, heap: process.memoryUsage().heapUsed };
  const started = performance.now();
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push(String((await api(server, "POST", "/api/v1/instances", { deployment_id: "echo-ts:1.0.0@local" })).instance_id));
  const createdMs = performance.now() - started;
  const manager = server.coordinator.manager;
  while (manager.hibernatedCount < count) await new Promise((resolve) => setTimeout(resolve, 100));
  while (manager.liveCount > 0) await new Promise((resolve) => setTimeout(resolve, 100));
  await new Promise((resolve) => setTimeout(resolve, 2000)); // teardowns settle
  gc();
  const after = { rss: process.memoryUsage().rss, heap: process.memoryUsage().heapUsed };
  const results: BenchResults = {
    "hibernated instances": manager.hibernatedCount,
    "create of each (serial) mean ms": createdMs / count,
    "coordinator RSS per hibernated instance KB": (after.rss - before.rss) / count / 1024,
    "coordinator heap per hibernated instance KB": (after.heap - before.heap) / count / 1024,
  };
  for (const id of ids) await api(server, "DELETE", `/api/v1/instances/${id}`);
  return results;
}

/**
 * `live` instances created beside the registered ones and kept running: their creates, round trips across
 * all of them (round robin), and the coordinator's RSS growth per live instance (its own process; the
 * agents' processes are their own).
 */
async function liveBeside(server: DevServer, live: number): Promise<BenchResults> {
  gc();
  const rssBefore = process.memoryUsage().rss;
  const creates: number[] = [];
  const sockets: WebSocket[] = [];
  const ids: string[] = [];
  try {
    for (let i = 0; i < live; i++) {
      const started = performance.now();
      ids.push(String((await api(server, "POST", "/api/v1/instances", { deployment_id: "echo-py:1.0.0@local" })).instance_id));
      creates.push(performance.now() - started);
    }
    for (const id of ids) sockets.push(await openWebSocket(`${server.url.replace("http", "ws")}/api/v1/instances/${id}/connect`));
    const roundTrips: number[] = [];
    for (let round = 0; round < 5; round++) {
      for (const ws of sockets) {
        const started = performance.now();
        const replied = nextFrame(ws, '"stream_end"');
        ws.send(JSON.stringify({ type: "process_message", content: { text: "hello" } }));
        await replied;
        roundTrips.push(performance.now() - started);
      }
    }
    gc();
    const rssAfter = process.memoryUsage().rss;
    const c = summarize(creates);
    const r = summarize(roundTrips.slice(live)); // the first round is each instance's first turn
    return {
      "live instances beside them": server.coordinator.manager.liveCount,
      "registered instances still held": server.coordinator.manager.hibernatedCount,
      "create of a live one beside them p50 ms": c.p50,
      "round trip across the live ones p50 ms": r.p50,
      "round trip across the live ones p99 ms": r.p99,
      "coordinator RSS growth per live instance MB": (rssAfter - rssBefore) / live / 1024 / 1024,
    };
  } finally {
    for (const ws of sockets) ws.close();
    for (const id of ids) await api(server, "DELETE", `/api/v1/instances/${id}`);
  }
}

/**
 * 10,000 registered instances: rows written to a data dir's instances.db, then a coordinator started on it
 * restores them all hibernated (no processes): its start-up time and heap per registered instance. Then
 * `live` (100) instances run beside them (liveBeside).
 */
async function registeredAtScale(dir: string, count: number, live: number): Promise<BenchResults> {
  const dataDir = path.join(dir, "registered");
  fs.mkdirSync(dataDir, { recursive: true });
  const registry = InstanceRegistry.open(dataDir);
  for (let i = 0; i < count; i++) {
    registry.put({ instanceId: `inst-bench-${i}`, agentId: `agent-bench-${i}`, deploymentId: "echo-ts:1.0.0@local", runtime: "typescript", agentEnv: { GREETING: "hi" }, createdAt: Date.now() });
  }
  registry.close();
  gc();
  const heapBefore = process.memoryUsage().heapUsed;
  const started = performance.now();
  const server = await createDevServer({
    port: 0,
    dataDir,
    agentsDir: path.join(REPO_ROOT, "examples"),
    logger: silentLogger,
    coordinator: { warmRunners: 0, capacity: live + 10 },
  });
  const startMs = performance.now() - started;
  try {
    gc();
    const heapAfter = process.memoryUsage().heapUsed;
    return {
      "registered (hibernated) instances restored at start": server.coordinator.manager.hibernatedCount,
      "coordinator start with them ms": startMs,
      ...(count > 0 ? { "coordinator heap per registered instance KB": (heapAfter - heapBefore) / count / 1024 } : {}),
      ...(live > 0 ? await liveBeside(server, live) : {}),
    };
  } finally {
    await server.close();
  }
}

export async function runHibernationBench(runs = 20, hibernated = Number(process.env.BENCH_HIBERNATED ?? 300)): Promise<BenchResults> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-bench-"));
  fs.chmodSync(dir, 0o711); // agents' uids pass through on their way to their workspaces (full isolation)
  const server = await createDevServer({
    port: 0,
    dataDir: path.join(dir, "data"),
    agentsDir: path.join(REPO_ROOT, "examples"),
    logger: silentLogger,
    coordinator: { limits: { hibernateAfterMs: HIBERNATE_AFTER_MS }, capacity: Math.max(200, hibernated + 10) },
  });
  const results: BenchResults = {};
  try {
    for (const name of ["echo-ts", "echo-py"]) {
      await wakeSamples(server, `${name}:1.0.0@local`, 1); // starts the runtime's warm pool
      const { wake, create } = await wakeSamples(server, `${name}:1.0.0@local`, runs);
      const w = summarize(wake);
      const c = summarize(create);
      results[`${name} wake->first reply p50 ms`] = w.p50;
      results[`${name} wake->first reply p99 ms`] = w.p99;
      results[`${name} create->first reply p50 ms (same run)`] = c.p50;
      results[`${name} wake / create p50`] = w.p50 / c.p50;
    }
    Object.assign(results, await hibernatedMemory(server, hibernated));
  } finally {
    await server.close();
  }
  // A cold create (no warm runners: a spawn per create, as a wake is) in the same run.
  const cold = await createDevServer({ port: 0, dataDir: path.join(dir, "cold"), agentsDir: path.join(REPO_ROOT, "examples"), logger: silentLogger, coordinator: { warmRunners: 0 } });
  try {
    for (const name of ["echo-ts", "echo-py"]) {
      const { create } = await wakeSamples(cold, `${name}:1.0.0@local`, Math.min(runs, 10), false);
      const c = summarize(create);
      results[`${name} cold create->first reply p50 ms (no warm runners)`] = c.p50;
      results[`${name} wake / cold create p50`] = (results[`${name} wake->first reply p50 ms`] ?? NaN) / c.p50;
    }
  } finally {
    await cold.close();
  }
  try {
    Object.assign(results, await registeredAtScale(dir, Number(process.env.BENCH_REGISTERED ?? 10_000), Number(process.env.BENCH_LIVE ?? 100)));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  }
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  printTable("hibernation: wake vs create, memory per hibernated instance", await runHibernationBench());
}
