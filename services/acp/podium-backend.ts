/**
 * What the ACP adapter needs from Podium, independent of how it reaches it. Two implementations:
 * `GatewayBackend` (in-process GatewayCore, for `/acp` on the gateway) and `ClientBackend`
 * (PodiumClient over HTTP/WebSocket, for `podium acp` over stdio). Both fail with ConnectError so
 * the adapter reads one error vocabulary.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { Json, JsonObject } from "../shared/json.js";

export interface BackendInstance {
  instanceId: string;
  /** The durable agent: the ACP session id. */
  agentId: string;
  deploymentId: string;
  /** RFC 3339, when known. */
  createdAt?: string;
}

export interface BackendUpdate {
  /** StreamUpdate seq (per agent, increasing). */
  seq: number;
  messageType: string;
  content?: JsonObject;
  agentId?: string;
  instanceId?: string;
  /** ms since the epoch, when known. */
  timestamp?: number;
}

export interface BackendMessage {
  seq: number;
  direction: "inbound" | "outbound";
  messageType: string;
  content?: JsonObject;
  turn: number;
  timestamp?: number;
}

export interface SentTurn {
  seq: number;
  turn: number;
  queuePosition: number;
}

export interface PodiumBackend {
  createInstance(request: { deploymentId: string; agentId?: string; environment?: Record<string, string> }, signal?: AbortSignal): Promise<BackendInstance>;
  /** Live instances matching the filter. */
  liveInstances(filter: { agentId?: string; deploymentId?: string }, signal?: AbortSignal): Promise<BackendInstance[]>;
  sendMessage(instanceId: string, content: JsonObject, signal?: AbortSignal): Promise<SentTurn>;
  cancelTurn(instanceId: string, turn: number, signal?: AbortSignal): Promise<void>;
  answer(instanceId: string, requestId: string, value: Json, signal?: AbortSignal): Promise<void>;
  /** Updates with seq > afterSeq (replayed, then live) until the instance ends or `signal` aborts. */
  updates(instanceId: string, afterSeq: number, signal: AbortSignal): AsyncIterable<BackendUpdate>;
  /** One page of the agent's history (inbound and outbound), seq > afterSeq. */
  listMessages(instanceId: string, afterSeq: number, limit: number, signal?: AbortSignal): Promise<{ messages: BackendMessage[]; nextAfterSeq?: number }>;
  stopInstance(instanceId: string, signal?: AbortSignal): Promise<void>;
  /** Whether Podium knows the agent (it has a workspace); undefined when that cannot be told (no file API). */
  agentExists(agentId: string, signal?: AbortSignal): Promise<boolean | undefined>;
  close(): Promise<void>;
}

/** The instance is gone or cannot take messages any more (ended, stopping, forgotten). */
export function isInstanceGone(err: unknown): boolean {
  return err instanceof ConnectError && (err.code === Code.NotFound || err.code === Code.FailedPrecondition);
}
