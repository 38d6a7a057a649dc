// A Connect client built from the installed @podium-agents/client/proto descriptors alone (plus
// @connectrpc/connect and a transport): create an instance, stream its updates, send it a message,
// stop it once its turn is done.
//   node out/connect-client.js URL API_KEY DEPLOYMENT_ID TEXT   -> one JSON line {instanceId, reply, types}
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { InstanceService, type StreamUpdate } from "@podium-agents/client/proto";

const [baseUrl = "", apiKey = "", deploymentId = "", text = ""] = process.argv.slice(2);
const transport = createConnectTransport({
  baseUrl,
  httpVersion: "1.1",
  interceptors: [
    (next) => (req) => {
      req.header.set("authorization", `Bearer ${apiKey}`);
      return next(req);
    },
  ],
});
const instances = createClient(InstanceService, transport);

const { instance } = await instances.createInstance({ deploymentId });
if (!instance) throw new Error("CreateInstance answered without an instance");
const controller = new AbortController();
// From the instance's first update: a stream of live updates only, opened while the message is on its way,
// could start after the reply.
const stream = instances.streamUpdates({ instanceId: instance.instanceId, replayAll: true }, { signal: controller.signal });
const sent = instances.sendMessage({ instanceId: instance.instanceId, content: { text } });
const updates: StreamUpdate[] = [];
try {
  for await (const batch of stream) {
    updates.push(...batch.updates);
    if (batch.updates.some((update) => update.messageType === "turn.done")) controller.abort();
  }
} catch (err) {
  if (!controller.signal.aborted) throw err;
}
await sent;
await instances.stopInstance({ instanceId: instance.instanceId });
const reply = updates
  .filter((update) => update.messageType === "stream_update")
  .map((update) => String(update.content?.["text"] ?? ""))
  .join("");
console.log(JSON.stringify({ instanceId: instance.instanceId, reply, types: updates.map((update) => update.messageType) }));
