/**
 * Clients of one instance in a process of their own (stream-bench.ts): the server process then fans one
 * agent's updates out without also running its clients' frame handling. Opens PODIUM_BENCH_CLIENTS
 * WebSockets to PODIUM_BENCH_URL, sends the flood message (`{"n": PODIUM_BENCH_UPDATES}`) on the first, and
 * prints the ms until each client has received that many `stream_update` frames.
 */
import { performance } from "node:perf_hooks";
import { openWebSocket } from "./ws-exchange.js";

const url = process.env.PODIUM_BENCH_URL ?? "";
const clients = Number(process.env.PODIUM_BENCH_CLIENTS ?? 4);
const updates = Number(process.env.PODIUM_BENCH_UPDATES ?? 50_000);

const sockets = await Promise.all(Array.from({ length: clients }, () => openWebSocket(url)));
const received = sockets.map(
  (ws) =>
    new Promise<void>((resolve, reject) => {
      let seen = 0;
      ws.on("message", (data: Buffer) => {
        if (data.toString().includes('"stream_update"') && ++seen === updates) resolve();
      });
      // Closed by the server (a client too slow for it, the instance ended): the flood cannot complete.
      ws.on("close", (code, reason) => reject(new Error(`a client was closed (${code} ${reason.toString()}) after ${seen} of ${updates} updates`)));
    }),
);
const start = performance.now();
sockets[0]?.send(JSON.stringify({ type: "process_message", content: { n: updates } }));
await Promise.all(received);
process.stdout.write(`${performance.now() - start}\n`);
for (const ws of sockets) ws.close();
