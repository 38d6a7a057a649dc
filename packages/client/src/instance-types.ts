/**
 * Instance, message-history and turn types of the REST API beyond the seed's five operations, and
 * the normalisers that read the answers (snake_case or camelCase keys, numbers or decimal strings).
 * A body that does not fit is a protocol error.
 */
import { protocolError } from "./http-request.js";
import { count, isRecord, str, time } from "./json-fields.js";

export interface InstanceInfo {
  instanceId: string;
  agentId: string;
  deploymentId: string;
  /** "starting" | "ready" | "busy" | "stopping" | "terminated" | "failed" | "unknown". */
  status: string;
  /** RFC 3339, when known. */
  createdAt?: string;
  /** The last update seq of the instance's agent. */
  lastSeq: number;
}

export interface SentMessage {
  /** The message's seq in the agent's history; updates of its turn come after it (use as afterSeq). */
  seq: number;
  /** The turn the message starts (the seq of the message). */
  turn: number;
  /** Turns ahead of it (0: it runs now). */
  queuePosition: number;
  /** Turns it cancelled (multitaskStrategy "interrupt"): the running one first, then the queued ones. */
  cancelledTurns: number[];
}

/** What a message sent while the agent is busy does; default: the deployment's podium.json `on_busy`. */
export type MultitaskStrategy = "enqueue" | "reject" | "interrupt";

export interface MessageRecord {
  seq: number;
  direction: "inbound" | "outbound";
  instanceId: string;
  /** "process_message" for inbound messages, the event's messageType for outbound ones. */
  messageType: string;
  content?: Record<string, unknown>;
  /** RFC 3339, when known. */
  timestamp?: string;
  turn: number;
}

export interface MessagePage {
  messages: MessageRecord[];
  /** Pass as afterSeq for the next page; undefined when this was the last. */
  nextAfterSeq?: number;
}

export function toInstanceInfo(body: unknown, what: string): InstanceInfo {
  const record = isRecord(body) && isRecord(body.instance) ? body.instance : body;
  if (!isRecord(record)) throw protocolError(what, "expected an instance object");
  const instanceId = str(record, "instance_id");
  if (!instanceId) throw protocolError(what, "no instance_id in the answer");
  const info: InstanceInfo = {
    instanceId,
    agentId: str(record, "agent_id") ?? "",
    deploymentId: str(record, "deployment_id") ?? "",
    status: str(record, "status") ?? "unknown",
    lastSeq: count(record, "last_seq") ?? 0,
  };
  const createdAt = time(record, "created_at");
  if (createdAt) info.createdAt = createdAt;
  return info;
}

export function toInstanceList(body: unknown, what: string): InstanceInfo[] {
  const list = Array.isArray(body) ? body : isRecord(body) ? (body.instances ?? []) : undefined;
  if (!Array.isArray(list)) throw protocolError(what, "expected {instances: [...]}");
  return list.map((item) => toInstanceInfo(item, what));
}

export function toSentMessage(body: unknown, what: string): SentMessage {
  if (!isRecord(body)) throw protocolError(what, "expected an object");
  const seq = count(body, "seq");
  if (seq === undefined) throw protocolError(what, "no seq in the answer");
  const cancelled = body.cancelled_turns ?? body.cancelledTurns;
  const cancelledTurns = Array.isArray(cancelled) ? cancelled.map(Number).filter((n) => Number.isSafeInteger(n)) : [];
  return { seq, turn: count(body, "turn") ?? seq, queuePosition: count(body, "queue_position") ?? 0, cancelledTurns };
}

export function toMessagePage(body: unknown, what: string): MessagePage {
  if (!isRecord(body)) throw protocolError(what, "expected an object");
  const list = body.messages ?? [];
  if (!Array.isArray(list)) throw protocolError(what, "messages is not a list");
  const messages = list.map((item): MessageRecord => {
    if (!isRecord(item)) throw protocolError(what, "a message is not an object");
    const seq = count(item, "seq");
    const messageType = str(item, "message_type");
    if (seq === undefined || messageType === undefined) throw protocolError(what, "a message has no seq or message_type");
    const record: MessageRecord = {
      seq,
      direction: str(item, "direction") === "inbound" ? "inbound" : "outbound",
      instanceId: str(item, "instance_id") ?? "",
      messageType,
      turn: count(item, "turn") ?? 0,
    };
    if (isRecord(item.content)) record.content = item.content;
    const timestamp = time(item, "timestamp");
    if (timestamp) record.timestamp = timestamp;
    return record;
  });
  const next = count(body, "next_after_seq");
  return next ? { messages, nextAfterSeq: next } : { messages };
}
