// The packages' main types in use, as a strict consumer writes them (public-types.ts, written by the
// test, imports every other export by name).
import { PodiumClient, PodiumConnectionError, type PodiumClientOptions, type PodiumEvent } from "@podium-agents/client";
import { InstanceService, type CreateInstanceRequest, type StreamUpdate } from "@podium-agents/client/proto";
import { defineAgent, type AgentContext, type JsonObject } from "@podium-agents/sdk";
import { createTestPodium, type TestAgent, type TurnResult } from "@podium-agents/testing";

export async function replyOf(options: PodiumClientOptions, deploymentId: string, text: string, signal?: AbortSignal): Promise<string> {
  const client = new PodiumClient(options);
  try {
    const { instanceId } = await client.createInstance({ agentType: deploymentId.split(":")[0] ?? deploymentId, deploymentId }, signal ? { signal } : {});
    const connection = await client.connect(instanceId);
    await connection.sendMessage(text, { source: "usage.ts" });
    let reply = "";
    for await (const event of connection.events satisfies AsyncIterable<PodiumEvent>) {
      if (event.messageType === "stream_update") reply += String(event.content?.["text"] ?? "");
      if (event.messageType === "turn.done") break;
    }
    await connection.close();
    return reply;
  } catch (err) {
    if (err instanceof PodiumConnectionError) throw new Error(`${err.kind}: ${err.message}`);
    throw err;
  } finally {
    await client.close();
  }
}

export const createRequest: Pick<CreateInstanceRequest, "deploymentId"> = { deploymentId: "echo-ts:1.0.0@local" };
export const methods: string[] = Object.keys(InstanceService.method);
export const textOf = (update: StreamUpdate): string => String(update.content?.["text"] ?? "");

interface Notes {
  lines: string[];
}
export const notes = defineAgent<Notes, { "notes.added": { line: string } }>({
  initialState: { lines: [] },
  onMessage(ctx: AgentContext<Notes, { "notes.added": { line: string } }>, message) {
    const content: JsonObject = message;
    const line = String(content["text"] ?? "");
    ctx.state.lines.push(line);
    ctx.send("notes.added", { line });
    ctx.send("complete", { text: `${ctx.state.lines.length} lines` });
  },
});

export async function firstTurn(bundleDir: string): Promise<TurnResult> {
  const podium = await createTestPodium({ sandbox: "none" });
  try {
    const agent: TestAgent = await podium.start(bundleDir);
    return await agent.send({ text: "hi" });
  } finally {
    await podium.close();
  }
}
