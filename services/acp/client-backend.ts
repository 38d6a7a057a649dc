/**
 * PodiumBackend over PodiumClient: REST for calls, one WebSocket `/connect?after_seq=N` per
 * followed turn. PodiumConnectionError becomes ConnectError (the server's code when it sent one).
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { type PodiumClient, PodiumConnectionError, type InstanceInfo } from "../../packages/client/src/index.js";
import { isJsonObject, type Json, type JsonObject } from "../shared/json.js";
import type { BackendInstance, BackendMessage, BackendUpdate, PodiumBackend, SentTurn } from "./podium-backend.js";

const CODES_BY_NAME: ReadonlyMap<string, Code> = new Map(
  Object.values(Code)
    .filter((value): value is Code => typeof value === "number")
    .map((code) => [Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase(), code]),
);

function statusCode(status: number | undefined): Code {
  switch (status) {
    case 400:
      return Code.InvalidArgument;
    case 401:
      return Code.Unauthenticated;
    case 403:
      return Code.PermissionDenied;
    case 404:
      return Code.NotFound;
    case 409:
      return Code.AlreadyExists;
    case 429:
      return Code.ResourceExhausted;
    case 501:
      return Code.Unimplemented;
    case 503:
      return Code.Unavailable;
    case 504:
      return Code.DeadlineExceeded;
    default:
      return Code.Internal;
  }
}

/** A PodiumClient failure as a ConnectError with the closest code. */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  if (!(err instanceof PodiumConnectionError)) return ConnectError.from(err);
  switch (err.kind) {
    case "http":
      return new ConnectError(err.message, (err.code ? CODES_BY_NAME.get(err.code) : undefined) ?? statusCode(err.status), undefined, undefined, err);
    case "timeout":
      return new ConnectError(err.message, Code.DeadlineExceeded, undefined, undefined, err);
    case "aborted":
      return new ConnectError(err.message, Code.Canceled, undefined, undefined, err);
    case "protocol":
      return new ConnectError(err.message, Code.Internal, undefined, undefined, err);
    default:
      return new ConnectError(err.message, Code.Unavailable, undefined, undefined, err);
  }
}

async function mapped<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    throw toConnectError(err);
  }
}

function toInstance(info: InstanceInfo): BackendInstance {
  const out: BackendInstance = { instanceId: info.instanceId, agentId: info.agentId, deploymentId: info.deploymentId };
  if (info.createdAt) out.createdAt = info.createdAt;
  return out;
}

function jsonObject(value: Record<string, unknown> | undefined): JsonObject | undefined {
  // Values came from JSON.parse, so they are JSON.
  return value && isJsonObject(value) ? (value as JsonObject) : undefined;
}

export class ClientBackend implements PodiumBackend {
  constructor(readonly client: PodiumClient) {}

  async createInstance(request: { deploymentId: string; agentId?: string; environment?: Record<string, string> }, signal?: AbortSignal): Promise<BackendInstance> {
    const agentType = request.deploymentId.split(":")[0] || request.deploymentId;
    const created = await mapped(
      this.client.createInstance(
        { agentType, deploymentId: request.deploymentId, environment: request.environment ?? {}, ...(request.agentId ? { agentId: request.agentId } : {}) },
        signal ? { signal } : {},
      ),
    );
    if (created.agentId) return { instanceId: created.instanceId, agentId: created.agentId, deploymentId: created.deploymentId };
    return toInstance(await mapped(this.client.getInstance(created.instanceId, signal ? { signal } : {})));
  }

  async liveInstances(filter: { agentId?: string; deploymentId?: string }, signal?: AbortSignal): Promise<BackendInstance[]> {
    const list = await mapped(this.client.listInstances(filter, signal ? { signal } : {}));
    return list.filter((i) => i.status !== "terminated" && i.status !== "failed").map(toInstance);
  }

  async sendMessage(instanceId: string, content: JsonObject, signal?: AbortSignal): Promise<SentTurn> {
    return mapped(this.client.postMessage(instanceId, content, signal ? { signal } : {}));
  }

  async cancelTurn(instanceId: string, turn: number, signal?: AbortSignal): Promise<void> {
    await mapped(this.client.cancelTurn(instanceId, turn, signal ? { signal } : {}));
  }

  async answer(instanceId: string, requestId: string, value: Json, signal?: AbortSignal): Promise<void> {
    await mapped(this.client.answer(instanceId, requestId, value, signal ? { signal } : {}));
  }

  async *updates(instanceId: string, afterSeq: number, signal: AbortSignal): AsyncGenerator<BackendUpdate> {
    const connection = await mapped(this.client.connect(instanceId, { afterSeq, signal }));
    try {
      for await (const event of connection.events) {
        // Frames without a seq are the gateway's own error frames; the abnormal close that follows ends the stream.
        if (event.seq === undefined) continue;
        const out: BackendUpdate = { seq: event.seq, messageType: event.messageType };
        const content = jsonObject(event.content);
        if (content) out.content = content;
        if (event.agentId) out.agentId = event.agentId;
        out.instanceId = instanceId;
        if (event.timestamp) out.timestamp = Date.parse(event.timestamp);
        yield out;
      }
    } catch (err) {
      if (signal.aborted) return;
      throw toConnectError(err);
    } finally {
      // Not awaited: the close handshake must not delay the caller (e.g. a prompt's answer).
      connection.close().catch(() => undefined);
    }
  }

  async listMessages(instanceId: string, afterSeq: number, limit: number, signal?: AbortSignal): Promise<{ messages: BackendMessage[]; nextAfterSeq?: number }> {
    const page = await mapped(this.client.listMessages(instanceId, { afterSeq, limit, ...(signal ? { signal } : {}) }));
    const messages = page.messages.map((m): BackendMessage => {
      const out: BackendMessage = { seq: m.seq, direction: m.direction, messageType: m.messageType, turn: m.turn };
      const content = jsonObject(m.content);
      if (content) out.content = content;
      if (m.timestamp) out.timestamp = Date.parse(m.timestamp);
      return out;
    });
    return page.nextAfterSeq !== undefined ? { messages, nextAfterSeq: page.nextAfterSeq } : { messages };
  }

  async stopInstance(instanceId: string, signal?: AbortSignal): Promise<void> {
    await mapped(this.client.stopInstance(instanceId, signal ? { signal } : {}));
  }

  async agentExists(agentId: string, signal?: AbortSignal): Promise<boolean | undefined> {
    try {
      return await this.client.agentExists(agentId, signal ? { signal } : {});
    } catch {
      return undefined;
    }
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}
