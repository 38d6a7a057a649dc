/**
 * How a `podium dev` coordinator grows with live instances (echo-py, a spawn per create so warm runners
 * are not counted): at each step, create -> ready p50, warm round trip p50 over the WebSocket, and the
 * server's memory growth per live instance (RSS of this process after a GC, minus its RSS with none).
 * `PODIUM_BENCH_SCALE=1,10,50,100` chooses the steps (default 1,10,50: a 2-core CI machine).
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
import { silentLogger } from "../services/shared/logger.js";
import { printTable, summarize, type BenchResults } from "./bench-util.js";
import { exchange, openWebSocket } from "./ws-exchange.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

function settledRss(): number {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().rss;
}

export async function runScaleBench(): Promise<BenchResults> {
  const steps = (process.env.PODIUM_BENCH_SCALE ?? "1,10,50")
    .split(",")
    .map(Number)
    .filter((n) => n > 0);
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
    const first = await fetch(`${server.url}/api/v1/instances`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ deployment_id: "echo-py:1.0.0@local" }) });
    await fetch(`${server.url}/api/v1/instances/${((await first.json()) as { instance_id: string }).instance_id}`, { method: "DELETE" });
    await new Promise((resolve) => setTimeout(resolve, 500));
    const base = settledRss();
    for (const step of steps) {
      const creates: number[] = [];
      while (sockets.length < step) {
        const start = performance.now();
        const res = await fetch(`${server.url}/api/v1/instances`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ deployment_id: "echo-py:1.0.0@local" }) });
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
      await new Promise((resolve) => setTimeout(resolve, 500));
      const growth = (settledRss() - base) / step / 1048576;
      if (creates.length > 0) results[`${step} live: create->ready p50 ms`] = summarize(creates).p50;
      results[`${step} live: round trip p50 ms`] = summarize(trips.slice(10)).p50;
      results[`${step} live: server MiB per instance`] = growth;
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
