/**
 * Other agents' round trips while one agent's ~50 MiB state is snapshotted (#17 goal 6: their p99 stays
 * under 3 ms). In `podium dev` (one process): one agent grows its state to 50 MiB of word-like records, two
 * small agents make round trips back to back the whole time. Each round: the big agent's patches since its
 * last snapshot are brought just under the snapshot threshold (one large `pad` turn, then a pause for its
 * garbage), then small turns until one starts a snapshot; the window ends when state.db holds it. Reported:
 * the small agents' round trips (p50 / p99 / max) and the longest event-loop stall in those windows, and the
 * same over an equally long window just before each (no snapshot), medians over the rounds.
 * Run: node --import tsx bench/snapshot-stall-bench.ts [rounds]
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import Database from "better-sqlite3";
import type { WebSocket } from "ws";
import { createDevServer } from "../services/dev/create-dev-server.js";
import { REPO_ROOT } from "../services/coordinator/runtime-commands.js";
import { silentLogger } from "../services/shared/logger.js";
import { percentile, printTable, type BenchResults } from "./bench-util.js";
import { exchange, openWebSocket } from "./ws-exchange.js";

const STATE_MIB = 50;
const SMALL_AGENTS = 2;

type Sample = { at: number; ms: number };

async function create(base: string): Promise<{ instance_id: string; agent_id: string }> {
  const res = await fetch(`${base}/api/v1/instances`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ deployment_id: "bigstate-ts:1.0.0" }) });
  const json = (await res.json()) as { instance_id: string; agent_id: string };
  if (res.status !== 201) throw new Error(`create failed: ${JSON.stringify(json)}`);
  return json;
}

const turn = (ws: WebSocket, content: object) => exchange(ws, JSON.stringify({ type: "process_message", content }), 1, (data) => data.includes('"stream_end"'));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Round trips back to back until stopped, each with its start time. */
function roundTrips(ws: WebSocket, samples: Sample[]): { stop(): Promise<void> } {
  let running = true;
  const loop = (async () => {
    while (running) {
      const at = performance.now();
      await turn(ws, { touch: true });
      samples.push({ at, ms: performance.now() - at });
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

/** The longest gap between 1 ms timer ticks, per window asked for later. */
function stallTrace(): { ticks: number[]; stop(): void } {
  const ticks: number[] = [performance.now()];
  const timer = setInterval(() => ticks.push(performance.now()), 1);
  return { ticks, stop: () => clearInterval(timer) };
}

function longestGap(ticks: number[], from: number, to: number): number {
  let longest = 0;
  for (let i = 1; i < ticks.length; i++) {
    const prev = ticks[i - 1] as number;
    const next = ticks[i] as number;
    if (next >= from && prev <= to) longest = Math.max(longest, next - prev - 1);
  }
  return longest;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

export async function runSnapshotStallBench(rounds = 3): Promise<BenchResults> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-snapshot-bench-"));
  const server = await createDevServer({ port: 0, dataDir: dir, agentsDir: path.join(REPO_ROOT, "bench/agents"), logger: silentLogger, coordinator: { warmRunners: 0 } });
  const sockets: WebSocket[] = [];
  const connect = async (id: string) => {
    const ws = await openWebSocket(`${server.url.replace("http", "ws")}/api/v1/instances/${id}/connect`);
    sockets.push(ws);
    return ws;
  };
  const results: Record<string, number[]> = {};
  const record = (key: string, value: number) => (results[key] ??= []).push(value);
  try {
    const big = await create(server.url);
    // A socket per turn: one that stays open would be sent every state.delta, the growth included. Growth in
    // 2 MiB turns (a state.delta over the gateway's maxBufferedBytes closed the socket with 4008 until ws-outbound
    // stopped counting the write it had just made).
    const bigTurn = async (content: object) => {
      const ws = await openWebSocket(`${server.url.replace("http", "ws")}/api/v1/instances/${big.instance_id}/connect`);
      await turn(ws, content);
      ws.close();
    };
    for (let grown = 0; grown < STATE_MIB; grown += 2) await bigTurn({ mb: 2, words: true });
    const db = new Database(path.join(dir, "agents", big.agent_id, "state.db"), { readonly: true });
    const newestSnapshot = () => db.prepare<[], { version: number; raw: number }>("SELECT version, raw_bytes AS raw FROM snapshots ORDER BY version DESC LIMIT 1").get();
    const patchChars = (after: number) => db.prepare<[number], number>("SELECT coalesce(sum(length(ops)), 0) FROM patches WHERE version > ?").pluck().get(after) ?? 0;
    const small = await Promise.all(Array.from({ length: SMALL_AGENTS }, () => create(server.url)));
    const smallWs = await Promise.all(small.map((s) => connect(s.instance_id)));
    for (const ws of smallWs) for (let i = 0; i < 200; i++) await turn(ws, { touch: true });
    const samples: Sample[] = [];
    const trace = stallTrace();
    const clients = smallWs.map((ws) => roundTrips(ws, samples));
    try {
      for (let round = 0; round < rounds; round++) {
        // Wait for the growth's (or the last round's) snapshot, then bring the patches just under the threshold.
        let snapshot = newestSnapshot();
        for (let settled = 0; settled < 3; ) {
          await sleep(500);
          const now = newestSnapshot();
          settled = now?.version === snapshot?.version ? settled + 1 : 0;
          snapshot = now;
        }
        if (!snapshot) throw new Error("no snapshot after the state grew");
        const missing = Math.ceil(snapshot.raw / 8) - patchChars(snapshot.version);
        await bigTurn({ pad: Math.max(0, missing - 120 - String(missing).length) });
        await sleep(3000);
        if (newestSnapshot()?.version !== snapshot.version) throw new Error("the pad turn started the snapshot");
        const start = performance.now();
        while (newestSnapshot()?.version === snapshot.version) {
          await bigTurn({ touch: true });
          await sleep(20);
        }
        const end = performance.now();
        const during = samples.filter((s) => s.at >= start && s.at <= end).map((s) => s.ms);
        const before = samples.filter((s) => s.at >= 2 * start - end && s.at < start).map((s) => s.ms);
        record("snapshot window ms", end - start);
        record("state MB", (newestSnapshot()?.raw ?? 0) / 1e6);
        record("others' round trips during snapshot", during.length);
        for (const [label, values, from, to] of [
          ["during snapshot", during, start, end],
          ["before (no snapshot)", before, 2 * start - end, start],
        ] as const) {
          record(`others' RT p50 ms, ${label}`, percentile(values, 50));
          record(`others' RT p99 ms, ${label}`, percentile(values, 99));
          record(`others' RT max ms, ${label}`, Math.max(...values));
          record(`longest event-loop stall ms, ${label}`, longestGap(trace.ticks, from, to));
        }
      }
    } finally {
      await Promise.all(clients.map((c) => c.stop()));
      trace.stop();
      db.close();
    }
  } finally {
    for (const ws of sockets) ws.close();
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return Object.fromEntries(Object.entries(results).map(([key, values]) => [`${key} (median of ${values.length})`, median(values)]));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  printTable("other agents' round trips while one agent snapshots ~50 MiB", await runSnapshotStallBench(Number(process.argv[2] ?? 3)));
}
