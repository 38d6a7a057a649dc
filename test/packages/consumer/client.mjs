// Plain Node on the installed @podium-agents/client (no TypeScript, no loader): create an instance
// of a deployment, send it a message and read its events until the platform's `turn.done`.
//   node client.mjs URL API_KEY DEPLOYMENT_ID TEXT   -> one JSON line {instanceId, reply, types}
import { PodiumClient } from "@podium-agents/client";

const [url, apiKey, deploymentId, text] = process.argv.slice(2);
const podium = new PodiumClient({ url, apiKey });
const { instanceId } = await podium.createInstance({ agentType: deploymentId.split(":")[0], deploymentId });
const connection = await podium.connect(instanceId);
await connection.sendMessage(text);
const types = [];
let reply = "";
for await (const event of connection.events) {
  types.push(event.messageType);
  if (event.messageType === "stream_update") reply += String(event.content?.text ?? "");
  if (event.messageType === "turn.done") break;
}
await connection.close();
await podium.stopInstance(instanceId);
await podium.close();
console.log(JSON.stringify({ instanceId, reply, types }));
