/**
 * Restart-to-ready of an agent with a large state: create -> grow the state to N MiB -> stop ->
 * create again with the same agent_id (the coordinator loads snapshot + deltas, the SDK gets the
 * state in `init`) -> ready. Compared with the first start of an empty agent in the same run. Also the
 * longest stall of the server's event loop during that restart (every other agent of the coordinator
 * waits that long), beside the longest stall of an empty agent's start.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { WebSocket } from "ws";
import { createDevServer } from "../services/dev/create-dev-server.js";
import { REPO_ROOT } from "../services/coordinator/runtime-commands.js";
import { silentLogger } from "../services/shared/logger.js";
import { printTable, type BenchResults } from "./bench-util.js";

async function post(url: string, body: unknown): Promise<{ instance_id: string; agent_id: string }> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const json = (await res.json()) as { instance_id: string; agent_id: string };
  if (res.status !== 201) throw new Error(`create failed: ${JSON.stringify(json)}`);
  return json;
}

/** Tracks the longest gap between 1 ms timer ticks of this (the server's) event loop. */
function stallMonitor(): { stop(): number } {
  let last = performance.now();
  let longest = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 1);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(longest, performance.now() - last);
    },
  };
}

async function turn(base: string, id: string, content: object): Promise<void> {
  const ws = new WebSocket(`${base.replace("http", "ws")}/api/v1/instances/${id}/connect`);
  await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
  await new Promise<void>((resolve) => {
    ws.on("message", (data) => {
      if (String(data).includes('"complete"') || String(data).includes('"stream_end"')) resolve();
    });
    ws.send(JSON.stringify({ type: "process_message", content }));
  });
  // Wait for the turn's state delta to be persisted before stopping.
  await new Promise((r) => setTimeout(r, 200));
  ws.close();
}

export async function runRestartBench(sizesMb = [10, 50]): Promise<BenchResults> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-bench-"));
  const server = await createDevServer({ port: 0, dataDir: dir, agentsDir: path.join(REPO_ROOT, "bench/agents"), logger: silentLogger, coordinator: { warmRunners: 0 } });
  const results: BenchResults = {};
  try {
    const url = `${server.url}/api/v1/instances`;
    let start = performance.now();
    let stalls = stallMonitor();
    const empty = await post(url, { deployment_id: "bigstate-ts:1.0.0" });
    results["empty agent create->ready ms"] = performance.now() - start;
    results["empty agent start: longest event-loop stall ms"] = stalls.stop();
    await fetch(`${url}/${empty.instance_id}`, { method: "DELETE" });
    for (const mb of sizesMb) {
      const first = await post(url, { deployment_id: "bigstate-ts:1.0.0" });
      for (let grown = 0; grown < mb; grown += 10) await turn(server.url, first.instance_id, { mb: Math.min(10, mb - grown) });
      for (let i = 0; i < 100; i++) await turn(server.url, first.instance_id, { touch: true });
      await fetch(`${url}/${first.instance_id}`, { method: "DELETE" });
      start = performance.now();
      stalls = stallMonitor();
      const again = await post(url, { deployment_id: "bigstate-ts:1.0.0", agent_id: first.agent_id });
      results[`${mb} MiB state restart->ready ms`] = performance.now() - start;
      results[`${mb} MiB state restart: longest event-loop stall ms`] = stalls.stop();
      results[`${mb} MiB restart / empty start`] = (results[`${mb} MiB state restart->ready ms`] as number) / (results["empty agent create->ready ms"] as number);
      await fetch(`${url}/${again.instance_id}`, { method: "DELETE" });
    }
  } finally {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  printTable("restart-to-ready with a large state", await runRestartBench());
}
