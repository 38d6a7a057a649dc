/** One create of a new agent as a client sees it (create-bench.ts, in its process or in create-client.ts). */
import { performance } from "node:perf_hooks";
import { openWebSocket } from "./ws-exchange.js";

export interface CreateSample {
  /** POST /instances -> its 201, ms. */
  created: number;
  /** POST /instances -> the first `stream_update` of the reply to one message sent over the instance's WebSocket, ms. */
  replied: number;
  instanceId: string;
}

/** One create -> 201, then -> the first reply of one message over the instance's WebSocket. */
export async function createAndReply(url: string, deploymentId: string): Promise<CreateSample> {
  const start = performance.now();
  const res = await fetch(`${url}/api/v1/instances`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ deployment_id: deploymentId }) });
  const body = (await res.json()) as { instance_id: string };
  if (res.status !== 201) throw new Error(`create failed: ${JSON.stringify(body)}`);
  const created = performance.now() - start;
  const ws = await openWebSocket(`${url.replace("http", "ws")}/api/v1/instances/${body.instance_id}/connect`);
  await new Promise<void>((resolve) => {
    ws.on("message", (data: Buffer) => {
      if (data.toString().includes('"stream_update"')) resolve();
    });
    ws.send(JSON.stringify({ type: "process_message", content: { text: "hello" } }));
  });
  const replied = performance.now() - start;
  ws.close();
  return { created, replied, instanceId: body.instance_id };
}
