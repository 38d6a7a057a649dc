/**
 * Validates what a browser sends over the bridge, once, at the edge. Every message is a JSON object
 * with a `type` and an optional `id` (string of at most 256 characters, or a safe integer) that the
 * reply echoes. Anything malformed is rejected with ConnectError(InvalidArgument).
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { Json, JsonObject } from "../shared/json.js";
import { isJsonObject } from "../shared/json.js";
import { parseClientJson } from "../shared/parse-client-json.js";
import { parseMultitaskStrategy, type BusyPolicy } from "../shared/busy-policy.js";
import { frameTrace } from "../gateway/frame-trace.js";
import type { TraceContext } from "../tracing/trace-context.js";

export type MessageId = string | number;

export type ClientMessage =
  | { type: "process_message"; id?: MessageId; content: JsonObject; multitask_strategy?: BusyPolicy; trace?: TraceContext }
  /** Cancels the running turn; `turn` (the one process_message answered with) only cancels that turn. */
  | { type: "cancel"; id?: MessageId; turn?: number }
  /** Answers a question_requested / permission_requested event by its request_id. */
  | { type: "answer"; id?: MessageId; request_id: string; value: Json }
  | { type: "list_files"; id?: MessageId; path?: string; depth?: number }
  | { type: "read_file"; id?: MessageId; path: string }
  | { type: "file_history"; id?: MessageId; path: string }
  | { type: "file_at_iteration"; id?: MessageId; path: string; iteration: number }
  /** The agent's schedules (docs/runtime.md#schedules). */
  | { type: "list_schedules"; id?: MessageId };

export type ClientMessageType = ClientMessage["type"];

export const MAX_PATH_LENGTH = 4096;
export const MAX_DEPTH = 64;
const MAX_ID_LENGTH = 256;

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}

function messageId(value: unknown): MessageId | undefined {
  if (value === undefined) return undefined;
  if (typeof value === "string" && value.length > 0 && value.length <= MAX_ID_LENGTH) return value;
  if (typeof value === "number" && Number.isSafeInteger(value)) return value;
  throw invalid(`id must be a non-empty string of at most ${MAX_ID_LENGTH} characters or an integer`);
}

/** A workspace-relative path: no NUL, no ".." segment, at most MAX_PATH_LENGTH characters. */
function filePath(value: unknown, field: string, required: boolean): string | undefined {
  if (value === undefined && !required) return undefined;
  if (typeof value !== "string") throw invalid(`${field} must be a string`);
  if (required && value.replace(/\/+/g, "").length === 0) throw invalid(`${field} must name a file`);
  if (value.length > MAX_PATH_LENGTH) throw invalid(`${field} is longer than ${MAX_PATH_LENGTH} characters`);
  if (value.includes("\0")) throw invalid(`${field} must not contain NUL`);
  if (value.split(/[\\/]/).includes("..")) throw invalid(`${field} must not contain ".." segments`);
  return value;
}

function nonNegativeInteger(value: unknown, field: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0 || value > max) {
    throw invalid(`${field} must be an integer between 0 and ${max}`);
  }
  return value;
}

function withId<T extends object>(message: T, id: MessageId | undefined): T & { id?: MessageId } {
  return id === undefined ? message : { ...message, id };
}

/** Validates one parsed browser message. Unknown keys are ignored. */
export function parseClientMessage(json: unknown): ClientMessage {
  if (!isJsonObject(json)) throw invalid("message must be a JSON object");
  const id = messageId(json.id);
  switch (json.type) {
    case "process_message": {
      const content = json.content;
      // What the content must hold (a string `text`, when it has one) is the SendMessage validator's to say, for every edge.
      if (!isJsonObject(content)) throw invalid("process_message.content must be an object");
      const strategy = parseMultitaskStrategy(json.multitask_strategy, "process_message.multitask_strategy");
      const trace = frameTrace(json, "process_message");
      return withId({ type: "process_message", content, ...(strategy ? { multitask_strategy: strategy } : {}), ...(trace ? { trace } : {}) }, id);
    }
    case "cancel": {
      const turn = json.turn === undefined || json.turn === null ? undefined : nonNegativeInteger(json.turn, "cancel.turn");
      return withId(turn === undefined ? { type: "cancel" } : { type: "cancel", turn }, id);
    }
    case "answer": {
      const requestId = json.request_id ?? json.requestId;
      if (typeof requestId !== "string" || requestId.length === 0 || requestId.length > MAX_ID_LENGTH) {
        throw invalid(`answer.request_id must be a non-empty string of at most ${MAX_ID_LENGTH} characters`);
      }
      return withId({ type: "answer", request_id: requestId, value: json.value === undefined ? null : json.value }, id);
    }
    case "list_files": {
      const path = filePath(json.path, "list_files.path", false);
      const depth = json.depth === undefined ? undefined : nonNegativeInteger(json.depth, "list_files.depth", MAX_DEPTH);
      const message: ClientMessage = { type: "list_files" };
      if (path !== undefined) message.path = path;
      if (depth !== undefined) message.depth = depth;
      return withId(message, id);
    }
    case "list_schedules":
      return withId({ type: "list_schedules" }, id);
    case "read_file":
    case "file_history":
      return withId({ type: json.type, path: filePath(json.path, `${json.type}.path`, true) as string }, id);
    case "file_at_iteration":
      return withId(
        {
          type: "file_at_iteration",
          path: filePath(json.path, "file_at_iteration.path", true) as string,
          iteration: nonNegativeInteger(json.iteration, "file_at_iteration.iteration"),
        },
        id,
      );
    default:
      throw invalid(typeof json.type === "string" ? `unknown message type "${json.type}"` : "message has no type");
  }
}

/** Parses one text frame (JSON, depth-limited: shared/parse-client-json.ts) and validates it. */
export function parseClientFrame(text: string): ClientMessage {
  return parseClientMessage(parseClientJson(text, "message"));
}
