/**
 * Client events (the translator's vocabulary) -> ACP. Pure apart from the small per-session state
 * it keeps (tool calls already announced, streamed argument text, what a turn has streamed, the
 * last known context window and the cumulative cost). docs/acp.md has the table.
 *
 * `map` returns actions; the adapter sends `update`s as `session/update`, runs `permission` and
 * `question` round trips, and ends the prompt on `turn_end` / `turn_error` (or when the instance's
 * stream ends).
 */
import type * as acp from "@agentclientprotocol/sdk";
import type { Json, JsonObject } from "../shared/json.js";
import { isJsonObject } from "../shared/json.js";
import type { ClientEventDraft } from "../translator/client-event.js";

export type AcpAction =
  | { kind: "update"; update: acp.SessionUpdate }
  | {
      kind: "permission";
      requestId: string;
      /** The tool call the request is about (announced first by `announce` when it was not yet). */
      toolCall: acp.ToolCallUpdate;
      announce?: acp.SessionUpdate;
      /** What "allow always" remembers: the tool name, else the title. */
      key: string;
    }
  | { kind: "question"; requestId: string; question: string; choices?: string[] }
  | { kind: "resolved"; requestId: string }
  | { kind: "turn_end"; stopReason: acp.StopReason }
  | { kind: "turn_error"; message: string; code?: string };

/** Tool call ids made up for permission requests that name no tool call. */
export const SYNTHETIC_PERMISSION_PREFIX = "podium-permission-";

const ACP_STOP_REASONS: ReadonlySet<string> = new Set(["end_turn", "max_tokens", "max_turn_requests", "refusal", "cancelled"]);

const KIND_PATTERNS: ReadonlyArray<[RegExp, acp.ToolKind]> = [
  [/think|reason/i, "think"],
  [/delete|remove|\brm\b|unlink/i, "delete"],
  [/move|rename|\bmv\b/i, "move"],
  [/write|edit|patch|replace|create_file|apply/i, "edit"],
  [/search|grep|find|glob|ripgrep|\brg\b/i, "search"],
  [/read|cat|view|open|list|\bls\b/i, "read"],
  [/fetch|http|curl|web|url|download/i, "fetch"],
  [/bash|shell|exec|run|command|terminal|sh\b/i, "execute"],
];

/** A best-effort ACP tool kind from a tool's name (clients pick icons by it). */
export function toolKind(name: string | undefined): acp.ToolKind {
  if (!name) return "other";
  for (const [pattern, kind] of KIND_PATTERNS) if (pattern.test(name)) return kind;
  return "other";
}

function str(data: JsonObject, key: string): string | undefined {
  const value = data[key];
  return typeof value === "string" ? value : undefined;
}

function num(data: JsonObject, key: string): number | undefined {
  const value = data[key];
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

/** Tool output as displayable text: strings as they are, anything else as indented JSON. */
export function displayText(value: Json | undefined): string {
  if (value === undefined || value === null) return "";
  if (typeof value === "string") return value;
  if (isJsonObject(value) && typeof value.text === "string" && Object.keys(value).length === 1) return value.text;
  return JSON.stringify(value, null, 2);
}

function textContent(text: string): acp.ToolCallContent[] {
  return text ? [{ type: "content", content: { type: "text", text } }] : [];
}

function parsedArgs(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

export class AcpMapper {
  private readonly announced = new Set<string>();
  private readonly argText = new Map<string, string>();
  private lastToolCallId: string | undefined;
  private generated = 0;
  private sawText = false;
  private sawThought = false;
  private contextWindow: number | undefined;
  private used: number | undefined;
  private cost: number | undefined;

  /** Forget what one turn streamed (call when a prompt starts). */
  startTurn(): void {
    this.sawText = false;
    this.sawThought = false;
  }

  private toolCallId(data: JsonObject): string {
    const id = str(data, "tool_call_id") ?? this.lastToolCallId;
    if (id) return id;
    this.generated += 1;
    return `podium-tool-${this.generated}`;
  }

  /** `tool_call` when `id` is new, else `tool_call_update`; both with the given fields. */
  private toolUpdate(id: string, name: string | undefined, fields: Omit<acp.ToolCallUpdate, "toolCallId">): acp.SessionUpdate {
    this.lastToolCallId = id;
    if (this.announced.has(id)) return { sessionUpdate: "tool_call_update", toolCallId: id, ...fields };
    this.announced.add(id);
    const { status, ...rest } = fields;
    const call: acp.SessionUpdate = {
      sessionUpdate: "tool_call",
      toolCallId: id,
      title: fields.title ?? name ?? "tool",
      kind: toolKind(name),
      status: status ?? "pending",
      ...Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined && v !== null)),
    };
    if (name) call.name = name;
    return call;
  }

  /**
   * `used` never goes down within a session: agents report both the context's total (usage_context)
   * and one model call's tokens (usage_update), and an editor's gauge must not jump back between them.
   */
  private raiseUsed(tokens: number | undefined): void {
    if (tokens !== undefined) this.used = Math.max(this.used ?? 0, tokens);
  }

  private usage(): acp.SessionUpdate[] {
    if (this.contextWindow === undefined || this.used === undefined) return [];
    const update: acp.SessionUpdate = { sessionUpdate: "usage_update", used: this.used, size: this.contextWindow };
    if (this.cost !== undefined) update.cost = { amount: this.cost, currency: "USD" };
    return [update];
  }

  map(draft: ClientEventDraft): AcpAction[] {
    const data = draft.data;
    const updates = (list: acp.SessionUpdate[]): AcpAction[] => list.map((update) => ({ kind: "update", update }));
    switch (draft.type) {
      case "turn_started":
        this.startTurn();
        return [];
      case "text_delta": {
        const text = str(data, "text") ?? "";
        if (!text) return [];
        this.sawText = true;
        return updates([{ sessionUpdate: "agent_message_chunk", content: { type: "text", text } }]);
      }
      case "turn_complete": {
        const text = str(data, "text");
        const out: AcpAction[] = !this.sawText && text ? updates([{ sessionUpdate: "agent_message_chunk", content: { type: "text", text } }]) : [];
        const reason = str(data, "stop_reason");
        this.startTurn();
        out.push({ kind: "turn_end", stopReason: reason && ACP_STOP_REASONS.has(reason) ? (reason as acp.StopReason) : "end_turn" });
        return out;
      }
      case "turn_error": {
        this.startTurn();
        const code = str(data, "code");
        return [code ? { kind: "turn_error", message: str(data, "message") ?? "unknown error", code } : { kind: "turn_error", message: str(data, "message") ?? "unknown error" }];
      }
      case "thinking_start":
        this.sawThought = false;
        return [];
      case "thinking_progress": {
        const text = str(data, "text") ?? "";
        if (!text) return [];
        this.sawThought = true;
        return updates([{ sessionUpdate: "agent_thought_chunk", content: { type: "text", text } }]);
      }
      case "thinking_complete": {
        const text = str(data, "text");
        const seen = this.sawThought;
        this.sawThought = false;
        return !seen && text ? updates([{ sessionUpdate: "agent_thought_chunk", content: { type: "text", text } }]) : [];
      }
      case "tool_call_start": {
        const name = str(data, "name");
        return updates([this.toolUpdate(this.toolCallId(data), name, { status: "pending", ...(name ? { title: name } : {}) })]);
      }
      case "tool_call_delta": {
        const id = this.toolCallId(data);
        const text = (this.argText.get(id) ?? "") + (str(data, "delta") ?? "");
        this.argText.set(id, text);
        return updates([this.toolUpdate(id, undefined, { rawInput: parsedArgs(text) })]);
      }
      case "tool_call": {
        const id = this.toolCallId(data);
        const name = str(data, "name");
        this.argText.delete(id);
        return updates([this.toolUpdate(id, name, { status: "in_progress", rawInput: data.args ?? {}, ...(name ? { title: name } : {}) })]);
      }
      case "tool_result": {
        const id = this.toolCallId(data);
        const failed = data.is_error === true;
        const result = data.result;
        return updates([this.toolUpdate(id, str(data, "name"), { status: failed ? "failed" : "completed", rawOutput: result ?? null, content: textContent(displayText(result)) })]);
      }
      case "tool_error": {
        const id = this.toolCallId(data);
        const message = str(data, "message") ?? "tool failed";
        return updates([this.toolUpdate(id, str(data, "name"), { status: "failed", rawOutput: { error: message }, content: textContent(message) })]);
      }
      case "permission_requested": {
        const requestId = str(data, "request_id");
        if (!requestId) return [];
        const name = str(data, "name");
        const title = str(data, "description") ?? (name ? `Allow ${name}?` : "Permission requested");
        const given = str(data, "tool_call_id");
        const id = given ?? `${SYNTHETIC_PERMISSION_PREFIX}${requestId}`;
        const rawInput = data.args;
        const action: AcpAction = {
          kind: "permission",
          requestId,
          key: name ?? title,
          toolCall: { toolCallId: id, title, ...(rawInput !== undefined ? { rawInput } : {}) },
        };
        if (!this.announced.has(id)) action.announce = this.toolUpdate(id, name, { status: "pending", title, ...(rawInput !== undefined ? { rawInput } : {}) });
        return [action];
      }
      case "question_requested": {
        const requestId = str(data, "request_id");
        if (!requestId) return [];
        const options = Array.isArray(data.options) ? data.options.filter((o): o is string => typeof o === "string") : undefined;
        const question = str(data, "question") ?? "The agent has a question.";
        return [options && options.length > 0 ? { kind: "question", requestId, question, choices: options } : { kind: "question", requestId, question }];
      }
      case "approval_resolved": {
        const requestId = str(data, "request_id");
        return requestId ? [{ kind: "resolved", requestId }] : [];
      }
      case "usage_context": {
        this.raiseUsed(num(data, "total_tokens"));
        this.contextWindow = num(data, "context_window") ?? this.contextWindow;
        return updates(this.usage());
      }
      case "usage_update": {
        const input = num(data, "input_tokens") ?? 0;
        const output = num(data, "output_tokens") ?? 0;
        if (input + output > 0) this.raiseUsed(input + output);
        const cost = num(data, "cost");
        if (cost !== undefined) this.cost = (this.cost ?? 0) + cost;
        return updates(this.usage());
      }
      default:
        return [];
    }
  }
}
