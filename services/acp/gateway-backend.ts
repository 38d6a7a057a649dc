/**
 * PodiumBackend over the gateway's shared handlers, in-process (the gateway's `/acp` WebSocket): every call is
 * an RPC of the public API, validated and executed as over REST or Connect (gateway-handlers.ts).
 */
import { create, fromJson } from "@bufbuild/protobuf";
import { timestampDate, timestampMs, ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { GatewayHandlers } from "../gateway/gateway-handlers.js";
import { callStream, callUnary, type EdgeCall } from "../gateway/edge-call.js";
import { isLive } from "../gateway/rest-json.js";
import type { Json, JsonObject } from "../shared/json.js";
import type { Instance } from "../../gen/podium/v1/instance_pb.js";
import { MessageDirection } from "../../gen/podium/v1/agent_history_pb.js";
import { InstanceService } from "../../gen/podium/v1/instance_service_pb.js";
import { FileService, FileTargetSchema } from "../../gen/podium/v1/file_service_pb.js";
import type { BackendInstance, BackendMessage, BackendUpdate, PodiumBackend, SentTurn } from "./podium-backend.js";

function toInstance(instance: Instance): BackendInstance {
  const out: BackendInstance = { instanceId: instance.instanceId, agentId: instance.agentId, deploymentId: instance.deploymentId };
  if (instance.createdAt) out.createdAt = timestampDate(instance.createdAt).toISOString();
  return out;
}

const I = InstanceService.method;
const acp = (signal?: AbortSignal): EdgeCall => ({ protocol: "websocket", signal });

function present(instance: Instance | undefined): Instance {
  if (!instance) throw new ConnectError("handler returned no instance", Code.Internal);
  return instance;
}

export class GatewayBackend implements PodiumBackend {
  constructor(private readonly handlers: GatewayHandlers) {}

  async createInstance(request: { deploymentId: string; agentId?: string; environment?: Record<string, string> }, signal?: AbortSignal): Promise<BackendInstance> {
    const req = { deploymentId: request.deploymentId, agentId: request.agentId ?? "", environment: request.environment ?? {} };
    return toInstance(present((await callUnary(this.handlers, I.createInstance, req, acp(signal))).instance));
  }

  async liveInstances(filter: { agentId?: string; deploymentId?: string }, signal?: AbortSignal): Promise<BackendInstance[]> {
    const { instances } = await callUnary(this.handlers, I.listInstances, { agentId: filter.agentId ?? "", deploymentId: filter.deploymentId ?? "" }, acp(signal));
    return instances.filter(isLive).map(toInstance);
  }

  async sendMessage(instanceId: string, content: JsonObject, signal?: AbortSignal): Promise<SentTurn> {
    const sent = await callUnary(this.handlers, I.sendMessage, { instanceId, content }, acp(signal));
    return { seq: Number(sent.seq), turn: Number(sent.turn), queuePosition: sent.queuePosition };
  }

  async cancelTurn(instanceId: string, turn: number, signal?: AbortSignal): Promise<void> {
    await callUnary(this.handlers, I.cancelTurn, { instanceId, turn: BigInt(turn) }, acp(signal));
  }

  async answer(instanceId: string, requestId: string, value: Json, signal?: AbortSignal): Promise<void> {
    await callUnary(this.handlers, I.answerRequest, { instanceId, requestId, value: fromJson(ValueSchema, value) }, acp(signal));
  }

  async *updates(instanceId: string, afterSeq: number, signal: AbortSignal): AsyncGenerator<BackendUpdate> {
    const request = afterSeq > 0 ? { instanceId, afterSeq: BigInt(afterSeq) } : { instanceId, replayAll: true };
    for await (const { updates } of callStream(this.handlers, I.streamUpdates, request, acp(signal))) {
      for (const update of updates) {
        const out: BackendUpdate = { seq: Number(update.seq), messageType: update.messageType };
        if (update.content) out.content = update.content;
        if (update.agentId) out.agentId = update.agentId;
        if (update.instanceId) out.instanceId = update.instanceId;
        if (update.timestamp) out.timestamp = timestampMs(update.timestamp);
        yield out;
      }
    }
  }

  async listMessages(instanceId: string, afterSeq: number, limit: number, signal?: AbortSignal): Promise<{ messages: BackendMessage[]; nextAfterSeq?: number }> {
    const page = await callUnary(this.handlers, I.listMessages, { instanceId, afterSeq: BigInt(afterSeq), limit }, acp(signal));
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
    await callUnary(this.handlers, I.stopInstance, { instanceId, graceMs: 5_000 }, acp(signal));
  }

  async agentExists(agentId: string, signal?: AbortSignal): Promise<boolean | undefined> {
    const target = create(FileTargetSchema, { target: { case: "agentId", value: agentId } });
    try {
      await callUnary(this.handlers, FileService.method.listFiles, { target, path: "", depth: 1 }, acp(signal));
      return true;
    } catch (err) {
      if (err instanceof ConnectError && err.code === Code.NotFound) return false;
      return undefined;
    }
  }

  async close(): Promise<void> {
    // Nothing owned: the gateway owns the core behind the handlers.
  }
}
