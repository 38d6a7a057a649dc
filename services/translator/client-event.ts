/**
 * The client-facing event: a Podium StreamUpdate translated for browsers (docs/client-events.md).
 * `ClientEvent` here is the plain-JSON form that goes over the bridge (`JSON.stringify` of it is the
 * frame); `clientEventToProto` / `clientEventFromProto` convert to and from podium.v1.ClientEvent.
 */
import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { JsonObject } from "../shared/json.js";
import { ClientEventSchema, type ClientEvent as ClientEventMessage } from "../../gen/podium/v1/client_event_pb.js";

export const CLIENT_EVENT_TYPES = [
  "turn_started",
  "text_delta",
  "turn_complete",
  "turn_error",
  "tool_call_start",
  "tool_call_delta",
  "tool_call",
  "tool_result",
  "tool_error",
  "question_requested",
  "permission_requested",
  "approval_resolved",
  "thinking_start",
  "thinking_progress",
  "thinking_complete",
  "terminal_stream",
  "terminal_complete",
  "sandbox_provisioning",
  "sandbox_ready",
  "sandbox_removed",
  "session_state",
  "usage_update",
  "usage_context",
  "state_delta",
  "workspace_changed",
  "hibernated",
  "woke",
  "schedule_fired",
] as const;

export type ClientEventType = (typeof CLIENT_EVENT_TYPES)[number];

const TYPE_SET: ReadonlySet<string> = new Set(CLIENT_EVENT_TYPES);

export function isClientEventType(value: string): value is ClientEventType {
  return TYPE_SET.has(value);
}

/** What the mapper produces: an event without its session envelope (seq, timestamp, ids). */
export interface ClientEventDraft {
  type: ClientEventType;
  data: JsonObject;
  agentId?: string;
}

/** One client event as browsers receive it (keys in this order; `agentId` only when known). */
export interface ClientEvent {
  type: ClientEventType;
  /** Per session, gap-free, from 1. */
  seq: number;
  /** RFC 3339, UTC, always with milliseconds: "2025-01-01T12:00:00.000Z". */
  timestamp: string;
  sessionId: string;
  instanceId: string;
  agentId?: string;
  data: JsonObject;
}

export function clientEventToProto(event: ClientEvent): ClientEventMessage {
  return create(ClientEventSchema, {
    type: event.type,
    seq: BigInt(event.seq),
    timestamp: timestampFromMs(Date.parse(event.timestamp)),
    sessionId: event.sessionId,
    instanceId: event.instanceId,
    agentId: event.agentId ?? "",
    data: event.data,
  });
}

/** Throws a TypeError when the message's type is not a client event type. */
export function clientEventFromProto(message: ClientEventMessage): ClientEvent {
  if (!isClientEventType(message.type)) throw new TypeError(`unknown client event type "${message.type}"`);
  return orderedClientEvent({
    type: message.type,
    seq: Number(message.seq),
    timestamp: (message.timestamp ? timestampDate(message.timestamp) : new Date(0)).toISOString(),
    sessionId: message.sessionId,
    instanceId: message.instanceId,
    agentId: message.agentId || undefined,
    data: message.data ?? {},
  });
}

/** The same event with its keys in the documented order and `agentId` dropped when empty. */
export function orderedClientEvent(event: ClientEvent): ClientEvent {
  const { type, seq, timestamp, sessionId, instanceId, agentId, data } = event;
  return agentId ? { type, seq, timestamp, sessionId, instanceId, agentId, data } : { type, seq, timestamp, sessionId, instanceId, data };
}

/** The bridge frame: one line of JSON, keys in the documented order. */
export function clientEventToJson(event: ClientEvent): string {
  return JSON.stringify(orderedClientEvent(event));
}
