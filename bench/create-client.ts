/**
 * A create client in a process of its own (create-bench.ts): the server's event loop, the agent's runner and
 * the client then run side by side as they would for a real client, instead of the client's fetch and
 * WebSocket work taking turns with the server's on one event loop. Reads "<url> <deployment id>" lines on
 * stdin; for each, one create and its first reply (create-exchange.ts), printed as one JSON line.
 */
import { createInterface } from "node:readline";
import { createAndReply } from "./create-exchange.js";

for await (const line of createInterface({ input: process.stdin })) {
  const [url = "", deploymentId = ""] = line.split(" ");
  try {
    process.stdout.write(`${JSON.stringify(await createAndReply(url, deploymentId))}\n`);
  } catch (err) {
    process.stdout.write(`${JSON.stringify({ error: String(err) })}\n`);
  }
}
