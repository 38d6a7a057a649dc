/**
 * Talking to Podium with the buf-generated SDK (gen/) and Connect: create an instance, stream its
 * updates, send a message, stop it. Works over gRPC, gRPC-Web or the Connect protocol — change the
 * transport. Run against `npx podium dev --agents examples`:
 *
 *   node --import tsx examples/clients/connect-client.ts http://127.0.0.1:7070 "hello podium"
 */
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { InstanceService } from "../../gen/podium/v1/instance_service_pb.js";

const [baseUrl = "http://127.0.0.1:7070", text = "hello podium"] = process.argv.slice(2);
const apiKey = process.env.PODIUM_API_KEY;
const transport = createGrpcTransport({
  baseUrl,
  interceptors: [
    (next) => (req) => {
      if (apiKey) req.header.set("authorization", `Bearer ${apiKey}`);
      return next(req);
    },
  ],
});
const instances = createClient(InstanceService, transport);

const { instance } = await instances.createInstance({ deploymentId: "echo-ts:1.0.0@local" });
if (!instance) throw new Error("no instance returned");
console.log(`created ${instance.instanceId} (agent ${instance.agentId})`);

const controller = new AbortController();
// From the instance's first update: a stream of live updates only, opened while the message is on its way,
// could start after the reply.
const stream = instances.streamUpdates({ instanceId: instance.instanceId, replayAll: true }, { signal: controller.signal });
const sent = instances.sendMessage({ instanceId: instance.instanceId, content: { text } });
let reply = "";
try {
  for await (const { updates } of stream) {
    for (const update of updates) {
      console.log(`#${update.seq} ${update.messageType} ${JSON.stringify(update.content ?? {})}`);
      if (update.messageType === "stream_update") reply += String(update.content?.text ?? "");
      if (update.messageType === "turn.done") controller.abort();
    }
  }
} catch (err) {
  if (!controller.signal.aborted) throw err;
}
await sent;
console.log(`reply: ${reply}`);
await instances.stopInstance({ instanceId: instance.instanceId });
