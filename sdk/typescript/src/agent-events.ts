/**
 * The event vocabulary `ctx.send(type, content)` is checked against: the client contract's event
 * types (docs/client-events.md, services/translator/map-event.ts) with the content each carries,
 * predeclared so `ctx.send("stream_update", { text })` type-checks out of the box and a typo fails
 * `tsc`. An agent declares its own event types as a map from type name to content shape:
 *
 *   type Events = { "plan.updated": { steps: string[] } };
 *   export default defineAgent<State, Events>({ ... ctx.send("plan.updated", { steps }) ... });
 *
 * Field names are each field's canonical name (the first one the translator reads); content a
 * client ignores is still delivered verbatim in the agent's own stream (StreamUpdate.content).
 */
import type { Json, JsonObject } from "./json-value.js";

/** An event without content: send it as `ctx.send(type)` (or with `{}`). */
export type NoContent = { [key: string]: never };

/** `turn_id` and other ids: a string, or a number the translator writes as a string. */
type Id = string | number;

interface TurnStart {
  /** The turn number (`ctx.turn`) or another id of the turn. */
  turn?: number;
  turn_id?: Id;
}
interface TextDelta {
  /** The next piece of the reply's text. */
  text: string;
}
interface TurnEnd {
  turn?: number;
  turn_id?: Id;
  stop_reason?: string;
  /** The whole reply, when the agent sends it at the end. */
  text?: string;
}
interface ErrorContent {
  message: string;
  code?: Id;
}
interface ToolRef {
  tool_call_id?: Id;
  name?: string;
}
interface SandboxRef {
  sandbox_id?: Id;
}

/** The events an agent sends, by type: the client contract's vocabulary, aliases included. */
export interface SeedEvents {
  // Turn lifecycle
  stream_start: TurnStart;
  created: TurnStart;
  stream_update: TextDelta;
  update: TextDelta;
  stream_end: TurnEnd;
  complete: TurnEnd;
  stream_complete: TurnEnd;
  error: ErrorContent;
  // Tools
  "tool.call_start": ToolRef;
  "tool.call_delta": { tool_call_id?: Id; delta: string };
  "tool.call": ToolRef & { args?: JsonObject };
  "tool.result": ToolRef & { result?: Json; is_error?: boolean };
  "tool.error": ToolRef & ErrorContent;
  // Interactive (ctx.ask / ctx.requestPermission send these for you)
  "tool.question_requested": { request_id?: Id; question?: string; options?: Json; choices?: string[] };
  "tool.permission_requested": PermissionRequest & { request_id?: Id };
  // Thinking
  "thinking.start": NoContent;
  "thinking.progress": TextDelta;
  thinking_update: TextDelta;
  "thinking.complete": { text?: string; duration_ms?: number };
  // Terminal
  "terminal.stream": { terminal_id?: Id; stream?: "stdout" | "stderr"; data: string };
  "terminal.complete": { terminal_id?: Id; exit_code?: number | null; signal?: string };
  // Sandbox
  "sandbox.provisioning": SandboxRef & { message?: string };
  "sandbox.init": SandboxRef & { url?: string };
  "sandbox.removed": SandboxRef & { reason?: string };
  // Usage
  usage: Usage;
  "usage.update": Usage;
  context: ContextUsage;
  "usage.context": ContextUsage;
}

export interface Usage {
  input_tokens?: number;
  output_tokens?: number;
  cache_read_tokens?: number;
  cache_write_tokens?: number;
  model?: string;
  cost?: number;
}

export interface ContextUsage {
  total_tokens?: number;
  context_window?: number;
  model?: string;
}

/** What `ctx.requestPermission(request)` takes: the fields clients show, plus any of your own. */
export interface PermissionRequest {
  tool_call_id?: Id;
  tool_name?: string;
  description?: string;
  args?: JsonObject;
  [field: string]: unknown;
}

/**
 * The events Podium itself writes into an agent's stream (services/shared/platform-events.ts), for
 * code that reads a stream. An agent does not send these: `ctx.send("turn.done")` fails to compile
 * (clients would take it for the platform's own) unless the agent declares the type itself.
 */
export interface PlatformEvents {
  "turn.done": { turn: number; ok: boolean; cancelled?: boolean };
  "state.delta": { version: number; patch: JsonObject[] };
  "workspace.changed": { iteration: number; files: string[] };
  terminating: { grace_ms?: number };
  terminated: { reason?: string; exit_code?: number | null; signal?: string | null };
  hibernated: { idle_ms?: number; exit_code?: number | null; signal?: string | null };
  woke: { hibernated_ms?: number };
  "schedule.fired": { id: string; due_at: string; turn: number };
  "tool.approval_resolved": { request_id?: string; approved?: boolean; value?: Json };
  "agent.restored": JsonObject;
}

/**
 * An agent's own event types: type name -> content shape (an object type, or `undefined` for an
 * event without content). Interfaces and type literals both work.
 */
export type EventMap<E> = { [K in keyof E]: object | undefined };

/** Opt out of checking: every event type, every object content (what an untyped `ctx` accepts). */
export type AnyEvents = { [type: string]: object | undefined };

/** What `ctx.send` accepts: the seed vocabulary with the agent's own events added (theirs win). */
// biome-ignore lint/complexity/noBannedTypes: `{}` is the empty event map (no events of the agent's own); `Record<never, never>` reads worse in users' hovers
export type AgentEvents<E extends EventMap<E> = {}> = Omit<SeedEvents, keyof E> & E;

/** The content argument of `send(type, content)`: optional for `undefined` content or when every field is. */
// biome-ignore lint/complexity/noBannedTypes: `{} extends C` asks whether every field of C is optional
export type SendContent<C> = undefined extends C ? [content?: Exclude<C, undefined>] : {} extends C ? [content?: C] : [content: C];
