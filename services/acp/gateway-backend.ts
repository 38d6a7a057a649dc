/** PodiumBackend over an in-process GatewayCore (the gateway's `/acp` WebSocket). */
import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { GatewayCore } from "../gateway/gateway-core.js";
import { isLive } from "../gateway/rest-json.js";
import type { Instance } from "../../gen/podium/v1/instance_pb.js";
import { MessageDirection } from "../../gen/podium/v1/instance_service_pb.js";
import { FileTargetSchema } from "../../gen/podium/v1/file_service_pb.js";
import type { BackendInstance, BackendMessage, BackendUpdate, PodiumBackend, SentTurn } from "./podium-backend.js";

function toInstance(instance: Instance): BackendInstance {
  const out: BackendInstance = { instanceId: instance.instanceId, agentId: instance.agentId, deploymentId: instance.deploymentId };
  if (instance.createdAt) out.createdAt = timestampDate(instance.createdAt).toISOString();
  return out;
}

export type GatewayBackendCore = Pick<
  GatewayCore,
  "createInstance" | "listInstances" | "sendMessage" | "cancelTurn" | "answerRequest" | "streamUpdates" | "listMessages" | "stopInstance" | "filesFor"
>;

export class GatewayBackend implements PodiumBackend {
  constructor(private readonly core: GatewayBackendCore) {}

  async createInstance(request: { deploymentId: string; agentId?: string; environment?: Record<string, string> }, signal?: AbortSignal): Promise<BackendInstance> {
    const instance = await this.core.createInstance(
      { deploymentId: request.deploymentId, agentId: request.agentId ?? "", environment: request.environment ?? {} },
      signal,
    );
    return toInstance(instance);
  }

  async liveInstances(filter: { agentId?: string; deploymentId?: string }, signal?: AbortSignal): Promise<BackendInstance[]> {
    const instances = await this.core.listInstances({ agentId: filter.agentId ?? "", deploymentId: filter.deploymentId ?? "" }, signal);
    return instances.filter(isLive).map(toInstance);
  }

  async sendMessage(instanceId: string, content: Parameters<GatewayCore["sendMessage"]>[1], signal?: AbortSignal): Promise<SentTurn> {
    const sent = await this.core.sendMessage(instanceId, content, signal);
    return { seq: Number(sent.seq), turn: Number(sent.turn), queuePosition: sent.queuePosition };
  }

  async cancelTurn(instanceId: string, turn: number, signal?: AbortSignal): Promise<void> {
    await this.core.cancelTurn(instanceId, BigInt(turn), signal);
  }

  async answer(instanceId: string, requestId: string, value: Parameters<GatewayCore["answerRequest"]>[2], signal?: AbortSignal): Promise<void> {
    await this.core.answerRequest(instanceId, requestId, value, signal);
  }

  async *updates(instanceId: string, afterSeq: number, signal: AbortSignal): AsyncGenerator<BackendUpdate> {
    const after = afterSeq > 0 ? { afterSeq: BigInt(afterSeq) } : { replayAll: true };
    for await (const update of this.core.streamUpdates(instanceId, after, signal)) {
      const out: BackendUpdate = { seq: Number(update.seq), messageType: update.messageType };
      if (update.content) out.content = update.content;
      if (update.agentId) out.agentId = update.agentId;
      if (update.instanceId) out.instanceId = update.instanceId;
      if (update.timestamp) out.timestamp = timestampMs(update.timestamp);
      yield out;
    }
  }

  async listMessages(instanceId: string, afterSeq: number, limit: number, signal?: AbortSignal): Promise<{ messages: BackendMessage[]; nextAfterSeq?: number }> {
    const page = await this.core.listMessages({ instanceId, afterSeq: BigInt(afterSeq), limit }, signal);
    const messages = page.messages.map((m): BackendMessage => {
      const out: BackendMessage = {
        seq: Number(m.seq),
        direction: m.direction === MessageDirection.INBOUND ? "inbound" : "outbound",
        messageType: m.messageType,
        turn: Number(m.turn),
      };
      if (m.content) out.content = m.content;
      if (m.timestamp) out.timestamp = timestampMs(m.timestamp);
      return out;
    });
    return page.nextAfterSeq > 0n ? { messages, nextAfterSeq: Number(page.nextAfterSeq) } : { messages };
  }

  async stopInstance(instanceId: string, signal?: AbortSignal): Promise<void> {
    await this.core.stopInstance(instanceId, 5_000, signal);
  }

  async agentExists(agentId: string, signal?: AbortSignal): Promise<boolean | undefined> {
    const target = create(FileTargetSchema, { target: { case: "agentId", value: agentId } });
    try {
      const files = await this.core.filesFor(target, signal);
      await files.listFiles({ target, path: "", depth: 1 }, { signal });
      return true;
    } catch (err) {
      if (err instanceof ConnectError && err.code === Code.NotFound) return false;
      return undefined;
    }
  }

  async close(): Promise<void> {
    // Nothing owned: the gateway owns the core.
  }
}
