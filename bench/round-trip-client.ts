/**
 * A round-trip client in a process of its own (stream-bench.ts): the server process's CPU per turn is then
 * the platform's alone, not the client's too. Connects to PODIUM_BENCH_URL, makes PODIUM_BENCH_WARMUP round
 * trips, prints "ready", waits for a line on stdin, makes PODIUM_BENCH_ROUND_TRIPS more and prints their
 * latencies in ms as one JSON array. A round trip: one process_message, until the frame with "stream_end".
 */
import { performance } from "node:perf_hooks";
import { exchange, openWebSocket } from "./ws-exchange.js";

const url = process.env.PODIUM_BENCH_URL ?? "";
const roundTrips = Number(process.env.PODIUM_BENCH_ROUND_TRIPS ?? 1000);
const warmup = Number(process.env.PODIUM_BENCH_WARMUP ?? 100);
const message = JSON.stringify({ type: "process_message", content: { text: "ping" } });
const isEnd = (data: string) => data.includes('"stream_end"');

const ws = await openWebSocket(url);
for (let i = 0; i < warmup; i++) await exchange(ws, message, 1, isEnd);
process.stdout.write("ready\n");
await new Promise((resolve) => process.stdin.once("data", resolve));
const samples: number[] = [];
for (let i = 0; i < roundTrips; i++) {
  const start = performance.now();
  await exchange(ws, message, 1, isEnd);
  samples.push(performance.now() - start);
}
process.stdout.write(`${JSON.stringify(samples)}\n`);
ws.close();
process.stdin.pause();
