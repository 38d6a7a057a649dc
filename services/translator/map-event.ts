/**
 * Podium event -> client events: a pure, table-driven mapping (the tables of docs/client-events.md,
 * which follow the platform-services contract row for row). Each row names the client event and the
 * fields carried over from the Podium event's content. Unknown types with a string `content.text`
 * fall back to text_delta; anything else unknown maps to [].
 */
import type { JsonObject } from "../shared/json.js";
import type { ClientEventDraft, ClientEventType } from "./client-event.js";
import { pickFields, type FieldSpec } from "./content-fields.js";
import { PlatformEvent } from "../shared/platform-events.js";

export interface PodiumEventInput {
  messageType: string;
  content?: JsonObject;
  agentId?: string;
}

/** How one Podium message type becomes a client event. */
export interface EventMapping {
  readonly clientType: ClientEventType;
  /** Fields read from content (see content-fields.ts). */
  readonly fields: readonly FieldSpec[];
  /** Fields written as is, after `fields` (they win). */
  readonly fixed?: JsonObject;
  /** Podium-native events: content is carried over verbatim as data. */
  readonly passthrough?: boolean;
}

const TOOL_CALL_ID: FieldSpec = { out: "tool_call_id", from: ["tool_call_id", "call_id", "tool_use_id", "id"], kind: "id" };
const TOOL_NAME: FieldSpec = { out: "name", from: ["name", "tool_name", "tool"], kind: "text" };
const REQUEST_ID: FieldSpec = { out: "request_id", from: ["request_id", "id"], kind: "id" };
const TURN_ID: FieldSpec = { out: "turn_id", from: ["turn_id", "turn"], kind: "id" };
const ERROR_MESSAGE: FieldSpec = { out: "message", from: ["message", "error", "text", "reason"], kind: "message", default: "unknown error" };
const ERROR_CODE: FieldSpec = { out: "code", from: ["code", "error_code"], kind: "id" };
const TERMINAL_ID: FieldSpec = { out: "terminal_id", from: ["terminal_id", "id"], kind: "id" };
const SANDBOX_ID: FieldSpec = { out: "sandbox_id", from: ["sandbox_id", "id"], kind: "id" };
const MODEL: FieldSpec = { out: "model", from: ["model"], kind: "text" };

const TURN_STARTED: EventMapping = { clientType: "turn_started", fields: [TURN_ID] };
const TEXT_DELTA: EventMapping = {
  clientType: "text_delta",
  fields: [{ out: "text", from: ["text", "delta", "content"], kind: "text", default: "" }],
};
const TURN_COMPLETE: EventMapping = {
  clientType: "turn_complete",
  fields: [TURN_ID, { out: "stop_reason", from: ["stop_reason", "reason"], kind: "text" }, { out: "text", from: ["text"], kind: "text" }],
};
const THINKING_PROGRESS: EventMapping = {
  clientType: "thinking_progress",
  fields: [{ out: "text", from: ["text", "delta", "thinking", "content"], kind: "text", default: "" }],
};
const SESSION_TERMINATED: EventMapping = {
  clientType: "session_state",
  fields: [
    { out: "reason", from: ["reason", "message"], kind: "text" },
    { out: "exit_code", from: ["exit_code"], kind: "exit_code" },
    { out: "signal", from: ["signal"], kind: "text" },
    { out: "grace_ms", from: ["grace_ms"], kind: "count" },
  ],
  fixed: { state: "terminated" },
};
const USAGE_UPDATE: EventMapping = {
  clientType: "usage_update",
  fields: [
    { out: "input_tokens", from: ["input_tokens", "prompt_tokens"], kind: "count", default: 0 },
    { out: "output_tokens", from: ["output_tokens", "completion_tokens"], kind: "count", default: 0 },
    { out: "cache_read_tokens", from: ["cache_read_tokens", "cache_read_input_tokens"], kind: "count" },
    { out: "cache_write_tokens", from: ["cache_write_tokens", "cache_creation_input_tokens"], kind: "count" },
    MODEL,
    { out: "cost", from: ["cost", "cost_usd", "total_cost"], kind: "number" },
  ],
};
const USAGE_CONTEXT: EventMapping = {
  clientType: "usage_context",
  fields: [
    { out: "total_tokens", from: ["total_tokens", "used_tokens", "tokens", "used"], kind: "count", default: 0 },
    { out: "context_window", from: ["context_window", "max_tokens", "window", "limit"], kind: "count" },
    MODEL,
  ],
};

/** Every Podium message type the translator knows, aliases included. */
export const PODIUM_EVENT_MAPPINGS: ReadonlyMap<string, EventMapping> = new Map<string, EventMapping>([
  // Turn lifecycle
  ["created", TURN_STARTED],
  ["stream_start", TURN_STARTED],
  ["update", TEXT_DELTA],
  ["stream_update", TEXT_DELTA],
  ["complete", TURN_COMPLETE],
  ["stream_end", TURN_COMPLETE],
  ["stream_complete", TURN_COMPLETE],
  ["error", { clientType: "turn_error", fields: [ERROR_MESSAGE, ERROR_CODE] }],
  // Tools
  ["tool.call_start", { clientType: "tool_call_start", fields: [TOOL_CALL_ID, TOOL_NAME] }],
  [
    "tool.call_delta",
    {
      clientType: "tool_call_delta",
      fields: [TOOL_CALL_ID, { out: "delta", from: ["delta", "args_delta", "arguments_delta", "text"], kind: "text", default: "" }],
    },
  ],
  [
    "tool.call",
    {
      clientType: "tool_call",
      fields: [TOOL_CALL_ID, TOOL_NAME, { out: "args", from: ["args", "arguments", "input", "params"], kind: "args", default: {} }],
    },
  ],
  [
    "tool.result",
    {
      clientType: "tool_result",
      fields: [TOOL_CALL_ID, TOOL_NAME, { out: "result", from: ["result", "output", "content"], kind: "json" }, { out: "is_error", from: ["is_error"], kind: "boolean" }],
    },
  ],
  ["tool.error", { clientType: "tool_error", fields: [TOOL_CALL_ID, TOOL_NAME, ERROR_MESSAGE] }],
  // Interactive
  [
    "tool.question_requested",
    {
      clientType: "question_requested",
      fields: [REQUEST_ID, { out: "question", from: ["question", "text", "prompt", "message"], kind: "text" }, { out: "options", from: ["options", "choices"], kind: "json" }],
    },
  ],
  [
    "tool.permission_requested",
    {
      clientType: "permission_requested",
      fields: [
        REQUEST_ID,
        { out: "tool_call_id", from: ["tool_call_id", "call_id"], kind: "id" },
        { out: "name", from: ["tool_name", "name", "tool"], kind: "text" },
        { out: "description", from: ["description", "action", "message", "text"], kind: "text" },
        { out: "args", from: ["args", "arguments", "input"], kind: "args" },
      ],
    },
  ],
  [
    "tool.approval_resolved",
    {
      clientType: "approval_resolved",
      fields: [REQUEST_ID, { out: "approved", from: ["approved", "granted", "allowed"], kind: "boolean" }, { out: "value", from: ["value", "answer", "response"], kind: "json" }],
    },
  ],
  // Thinking
  ["thinking.start", { clientType: "thinking_start", fields: [] }],
  ["thinking.progress", THINKING_PROGRESS],
  ["thinking_update", THINKING_PROGRESS],
  [
    "thinking.complete",
    {
      clientType: "thinking_complete",
      fields: [
        { out: "text", from: ["text", "thinking"], kind: "text" },
        { out: "duration_ms", from: ["duration_ms"], kind: "count" },
      ],
    },
  ],
  // Terminal
  [
    "terminal.stream",
    {
      clientType: "terminal_stream",
      fields: [TERMINAL_ID, { out: "stream", from: ["stream"], kind: "text" }, { out: "data", from: ["data", "output", "text", "chunk"], kind: "text", default: "" }],
    },
  ],
  [
    "terminal.complete",
    {
      clientType: "terminal_complete",
      fields: [TERMINAL_ID, { out: "exit_code", from: ["exit_code", "code"], kind: "exit_code", default: null }, { out: "signal", from: ["signal"], kind: "text" }],
    },
  ],
  // Sandbox
  ["sandbox.provisioning", { clientType: "sandbox_provisioning", fields: [SANDBOX_ID, { out: "message", from: ["message", "status", "text"], kind: "text" }] }],
  ["sandbox.init", { clientType: "sandbox_ready", fields: [SANDBOX_ID, { out: "url", from: ["url"], kind: "text" }] }],
  ["sandbox.removed", { clientType: "sandbox_removed", fields: [SANDBOX_ID, { out: "reason", from: ["reason"], kind: "text" }] }],
  // Session lifecycle
  [PlatformEvent.terminating, SESSION_TERMINATED],
  [PlatformEvent.terminated, SESSION_TERMINATED],
  // Usage
  ["usage", USAGE_UPDATE],
  ["usage.update", USAGE_UPDATE],
  ["context", USAGE_CONTEXT],
  ["usage.context", USAGE_CONTEXT],
  // Podium-native
  [PlatformEvent.stateDelta, { clientType: "state_delta", fields: [], passthrough: true }],
  [PlatformEvent.workspaceChanged, { clientType: "workspace_changed", fields: [], passthrough: true }],
  [PlatformEvent.hibernated, { clientType: "hibernated", fields: [], passthrough: true }],
  [PlatformEvent.woke, { clientType: "woke", fields: [], passthrough: true }],
  [PlatformEvent.scheduleFired, { clientType: "schedule_fired", fields: [], passthrough: true }],
]);

function draft(type: ClientEventType, data: JsonObject, agentId: string | undefined): ClientEventDraft {
  return agentId ? { type, data, agentId } : { type, data };
}

/** Translates one Podium event into zero or more client event drafts (no seq/timestamp yet). */
export function mapPodiumEvent(event: PodiumEventInput): ClientEventDraft[] {
  const mapping = PODIUM_EVENT_MAPPINGS.get(event.messageType);
  if (mapping) {
    const data = mapping.passthrough ? structuredClone(event.content ?? {}) : { ...pickFields(event.content, mapping.fields), ...mapping.fixed };
    return [draft(mapping.clientType, data, event.agentId)];
  }
  const text = event.content?.text;
  if (typeof text === "string") return [draft("text_delta", { text }, event.agentId)];
  return [];
}
