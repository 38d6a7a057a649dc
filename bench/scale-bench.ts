/**
 * How a `podium dev` coordinator grows with live instances (echo-py, a spawn per create so warm runners
 * are not counted): at each step, create -> ready p50, warm round trip p50 over the WebSocket, and the
 * server's memory growth per live instance (RSS of this process after a GC, minus its RSS with none).
 * `PODIUM_BENCH_SCALE=1,10,50,100` chooses the steps (default 1,10,50: a 2-core CI machine);
 * `PODIUM_BENCH_SCALE_RUNTIME=ts` uses echo-ts. Memory is measured right after the turns and again once each
 * instance's idle memory release (IDLE_MEMORY_RELEASE_MS) has run; "added since" is the growth from the previous
 * step (without the one-time costs, such as the shared watch thread); the agents' trees are summed PSS. The
 * snapshot thread, which every coordinator starts once some agent had 128 turns, is started before the baseline.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { WebSocket } from "ws";
import { createDevServer } from "../services/dev/create-dev-server.js";
import { REPO_ROOT } from "../services/coordinator/runtime-commands.js";
import { IDLE_MEMORY_RELEASE_MS } from "../services/coordinator/store/agent-store.js";
import { SnapshotThread } from "../services/coordinator/store/snapshot-thread.js";
import { checkpointFlags } from "../services/coordinator/store/sqlite.js";
import { silentLogger } from "../services/shared/logger.js";
import { printTable, summarize, type BenchResults } from "./bench-util.js";
import { exchange, openWebSocket } from "./ws-exchange.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

/** RSS and V8 heap (used + external) of this process after a full GC. */
function settled(): { rss: number; heap: number } {
  for (let i = 0; i < 3; i++) gc();
  const usage = process.memoryUsage();
  return { rss: usage.rss, heap: usage.heapUsed + usage.external };
}

/** PSS (KiB) of every process below this one but tsx's esbuild service: the agents' trees (sandbox, runtime). */
function descendantsPssKiB(): number {
  const children = new Map<number, number[]>();
  for (const entry of fs.readdirSync("/proc")) {
    const pid = Number(entry);
    if (!(pid > 0)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), pid]);
    } catch {
      // gone meanwhile
    }
  }
  let total = 0;
  const comm = (pid: number) => {
    try {
      return fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim();
    } catch {
      return "";
    }
  };
  const pending = (children.get(process.pid) ?? []).filter((pid) => comm(pid) !== "esbuild");
  for (let pid = pending.pop(); pid !== undefined; pid = pending.pop()) {
    pending.push(...(children.get(pid) ?? []));
    try {
      total += Number(/^Pss:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"))?.[1] ?? 0);
    } catch {
      // gone, or not readable (not root)
    }
  }
  return total;
}

export async function runScaleBench(): Promise<BenchResults> {
  const steps = (process.env.PODIUM_BENCH_SCALE ?? "1,10,50")
    .split(",")
    .map(Number)
    .filter((n) => n > 0);
  const runtime = process.env.PODIUM_BENCH_SCALE_RUNTIME === "ts" ? "ts" : "py";
  const deployment = `echo-${runtime}:1.0.0@local`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-bench-scale-"));
  fs.chmodSync(dir, 0o711);
  const server = await createDevServer({
    port: 0,
    dataDir: dir,
    agentsDir: path.join(REPO_ROOT, "examples"),
    logger: silentLogger,
    coordinator: { warmRunners: 0, capacity: Math.max(...steps) + 8 },
  });
  const results: BenchResults = {};
  const sockets: WebSocket[] = [];
  try {
    // One create and delete first: the bundle cache, the database template and the Python bytecode exist.
    const first = await fetch(`${server.url}/api/v1/instances`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ deployment_id: deployment }) });
    await fetch(`${server.url}/api/v1/instances/${((await first.json()) as { instance_id: string }).instance_id}`, { method: "DELETE" });
    // The snapshot thread (~18 MiB, once per process) starts at the first background checkpoint of any agent
    // (every 128 turns): a one-time cost like the watch thread, started before the baseline so that the step in
    // which some agent reaches its 128th turn does not count it against its instances.
    await SnapshotThread.acquire().checkpoint([], checkpointFlags());
    await new Promise((resolve) => setTimeout(resolve, 500));
    const base = settled();
    let previous = { live: 0, rss: base.rss };
    for (const step of steps) {
      const creates: number[] = [];
      while (sockets.length < step) {
        const start = performance.now();
        const res = await fetch(`${server.url}/api/v1/instances`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ deployment_id: deployment }) });
        const body = (await res.json()) as { instance_id: string };
        if (res.status !== 201) throw new Error(`create failed at ${sockets.length} instances: ${JSON.stringify(body)}`);
        creates.push(performance.now() - start);
        sockets.push(await openWebSocket(`${server.url.replace("http", "ws")}/api/v1/instances/${body.instance_id}/connect`));
      }
      const trips: number[] = [];
      const message = JSON.stringify({ type: "process_message", content: { text: "ping" } });
      for (let i = 0; i < 100; i++) {
        const ws = sockets[i % sockets.length] as WebSocket;
        const start = performance.now();
        await exchange(ws, message, 1, (data) => data.includes('"stream_end"'));
        trips.push(performance.now() - start);
      }
      // Right after the turns (each instance's idle memory release not yet due), then once it is.
      const busy = settled();
      await new Promise((resolve) => setTimeout(resolve, IDLE_MEMORY_RELEASE_MS + 500));
      const idle = settled();
      if (creates.length > 0) results[`${step} live: create->ready p50 ms`] = summarize(creates).p50;
      results[`${step} live: round trip p50 ms`] = summarize(trips.slice(10)).p50;
      results[`${step} live: server MiB per instance, after turns`] = (busy.rss - base.rss) / step / 1048576;
      results[`${step} live: server MiB per instance, idle`] = (idle.rss - base.rss) / step / 1048576;
      results[`${step} live: of which V8 heap MiB per instance`] = (idle.heap - base.heap) / step / 1048576;
      results[`${step} live: server MiB per instance added since ${previous.live}, idle`] = (idle.rss - previous.rss) / (step - previous.live) / 1048576;
      results[`${step} live: agent tree PSS MiB per instance (${runtime})`] = descendantsPssKiB() / step / 1024;
      previous = { live: step, rss: idle.rss };
    }
  } finally {
    for (const ws of sockets) ws.close();
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  printTable("scale: one coordinator from 1 to N live instances", await runScaleBench());
}
