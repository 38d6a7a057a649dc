/**
 * The coordinator <-> agent process protocol, version 1. This file is the single description;
 * the TypeScript SDK (sdk/typescript) and the Python SDK (sdk/python) implement exactly this.
 *
 * Transport
 * - The coordinator spawns the agent runner with the entry file as its argument (or, for a warm runner
 *   spawned before its agent was asked for, without it: then `init.entry` names it), cwd = the agent's
 *   workspace, and four stdio slots: 0 = host -> agent frames, 1 = stdout (logged, level info),
 *   2 = stderr (logged, level warn), 3 = agent -> host frames.
 * - A frame is one JSON object on one line (NDJSON, UTF-8, '\n' terminated). Nothing else is ever
 *   written to fd 3; print() / console.log go to stdout and end up in logs.db.
 * - The coordinator validates every agent -> host frame (parseAgentFrame below); a malformed frame is
 *   logged and dropped, never forwarded.
 *
 * Life of a process
 * 1. host: `init` (always the first frame). The agent loads the entry module. When `stateVersion`
 *    is 0 the agent is brand new: the SDK seeds ctx.state from the entry's initial state
 *    (TS `initialState`, value or function; Python module-level `initial_state`, value or callable)
 *    and reports it as a `state_patch` with turn 0 and ops `[{"op":"replace","path":"","value":…}]`.
 *    Otherwise ctx.state starts as `init.state`.
 * 2. agent: runs the optional onStart(ctx) / on_start(ctx), flushes pending state ops, then `ready`.
 *    A module that fails to load sends `fatal` and exits non-zero.
 * 3. host: `message` frames, one at a time: the host sends the next only after `turn_done` for the
 *    previous one (it queues the rest). The SDK calls onMessage(ctx, content) / on_message(ctx, content)
 *    (sync or async). Events go out as `event` frames tagged with the turn. When the handler returns
 *    or throws, the SDK flushes the turn's state ops as ONE `state_patch` (if any), then `turn_done`
 *    (with `error` when it threw). The host emits `complete` for the turn unless the agent already
 *    emitted `complete`, `stream_end` or `stream_complete`, and `error` {message} when it threw.
 * 4. host: `cancel` {turn}: the SDK aborts ctx.signal (TS) / sets ctx.cancelled (Python) for that turn.
 *    The handler should return soon; the turn still ends with `turn_done`.
 * 5. host: `answer` {id, value}: the reply to an `event` the agent sent with content.request_id = id
 *    (permission / question requests); the SDK resolves the matching pending ask.
 * 6. host: `stop` {graceMs}: the SDK runs onStop(ctx) / on_stop(ctx), flushes state, sends `stopped`
 *    and exits 0. The host SIGKILLs the process when graceMs passes. EOF on stdin means stop too.
 *
 * State deltas
 * ctx.state is a plain object / dict the agent mutates. The SDK records each mutation as RFC 6902
 * ops (add / remove / replace; values are copied at the time of the mutation, so ops replayed in
 * order on the previous state give exactly the new state). Paths use JSON Pointer escaping
 * (~0, ~1); array appends use the index (not "-"). Only JSON values are allowed in state.
 */
import type { Json, JsonObject, JsonPatchOp } from "../shared/json.js";
import { isJsonObject } from "../shared/json.js";
import { jsonDepthExceeds, MAX_JSON_DEPTH } from "../shared/parse-client-json.js";

export const AGENT_PROTOCOL_VERSION = 1;

export type LogLevel = "debug" | "info" | "warn" | "error";
export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

export type HostToAgent =
  | {
      type: "init";
      protocol: 1;
      instanceId: string;
      agentId: string;
      deploymentId: string;
      /** Absolute path of the workspace (also the process cwd). */
      workspace: string;
      /** environment merged with secrets (secrets win). Also in the process environment. */
      env: Record<string, string>;
      state: JsonObject;
      stateVersion: number;
      /** Absolute path of the entry module, for a runner spawned without one (a warm runner, runner-pool.ts). */
      entry?: string;
    }
  | { type: "message"; turn: number; content: JsonObject }
  | { type: "answer"; id: string; value: Json }
  | { type: "cancel"; turn: number }
  /** `hibernate`: the instance is hibernating (onHibernate runs instead of onStop); a later process resumes it. */
  | { type: "stop"; graceMs: number; hibernate?: true };

export type AgentError = { message: string; stack?: string };

export type AgentToHost =
  | { type: "ready"; protocol: number; runtime: "python" | "typescript"; sdk: string }
  | { type: "event"; turn: number; messageType: string; content?: JsonObject }
  | { type: "state_patch"; turn: number; ops: JsonPatchOp[] }
  | { type: "log"; level: LogLevel; message: string; fields?: JsonObject }
  | { type: "turn_done"; turn: number; error?: AgentError }
  | { type: "stopped" }
  | { type: "fatal"; error: AgentError }
  /** ctx.schedule / cancelSchedule / schedules: the host answers with an `answer` frame of the same id. */
  | ScheduleFrame;

export type ScheduleFrame =
  | { type: "schedule"; id: string; op: "create"; when: JsonObject; message: JsonObject }
  | { type: "schedule"; id: string; op: "cancel"; scheduleId: string }
  | { type: "schedule"; id: string; op: "list" };

/** Event types after which the host does not add its own `complete` for the turn. */
export const TURN_END_EVENTS: ReadonlySet<string> = new Set(["complete", "stream_end", "stream_complete"]);

export class AgentFrameError extends Error {
  override readonly name = "AgentFrameError";
}

const PATCH_OPS = new Set(["add", "remove", "replace", "move", "copy", "test"]);

function nonNegativeInt(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0;
}

function agentError(value: unknown): AgentError | undefined {
  if (!isJsonObject(value) || typeof value.message !== "string") return undefined;
  return typeof value.stack === "string" ? { message: value.message, stack: value.stack } : { message: value.message };
}

function patchOps(value: unknown): JsonPatchOp[] | undefined {
  if (!Array.isArray(value)) return undefined;
  for (const op of value) {
    if (!isJsonObject(op) || typeof op.op !== "string" || !PATCH_OPS.has(op.op) || typeof op.path !== "string") {
      return undefined;
    }
    if ((op.op === "add" || op.op === "replace" || op.op === "test") && !("value" in op)) return undefined;
    if ((op.op === "move" || op.op === "copy") && typeof op.from !== "string") return undefined;
  }
  return value as JsonPatchOp[];
}

/** Validates one agent -> host line. Throws AgentFrameError with a reason on anything malformed. */
export function parseAgentFrame(line: string): AgentToHost {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new AgentFrameError("frame is not valid JSON");
  }
  if (!isJsonObject(value) || typeof value.type !== "string") throw new AgentFrameError("frame has no type");
  // The frame itself is one level; its content gets what clients get (protobuf Struct recursion bounds it).
  if (jsonDepthExceeds(value, MAX_JSON_DEPTH + 2)) throw new AgentFrameError(`frame nests deeper than ${MAX_JSON_DEPTH} levels`);
  switch (value.type) {
    case "ready":
      if (!nonNegativeInt(value.protocol)) throw new AgentFrameError("ready.protocol must be an integer");
      if (value.runtime !== "python" && value.runtime !== "typescript") throw new AgentFrameError("ready.runtime is unknown");
      return { type: "ready", protocol: value.protocol, runtime: value.runtime, sdk: typeof value.sdk === "string" ? value.sdk : "" };
    case "event": {
      if (!nonNegativeInt(value.turn)) throw new AgentFrameError("event.turn must be an integer");
      if (typeof value.messageType !== "string" || value.messageType.length === 0 || value.messageType.length > 128) {
        throw new AgentFrameError("event.messageType must be a non-empty string of at most 128 characters");
      }
      if (value.content !== undefined && value.content !== null && !isJsonObject(value.content)) {
        throw new AgentFrameError("event.content must be an object");
      }
      const frame: AgentToHost = { type: "event", turn: value.turn, messageType: value.messageType };
      if (isJsonObject(value.content)) frame.content = value.content;
      return frame;
    }
    case "state_patch": {
      if (!nonNegativeInt(value.turn)) throw new AgentFrameError("state_patch.turn must be an integer");
      const ops = patchOps(value.ops);
      if (!ops) throw new AgentFrameError("state_patch.ops must be RFC 6902 operations");
      return { type: "state_patch", turn: value.turn, ops };
    }
    case "log": {
      const level = LOG_LEVELS.includes(value.level as LogLevel) ? (value.level as LogLevel) : "info";
      if (typeof value.message !== "string") throw new AgentFrameError("log.message must be a string");
      const frame: AgentToHost = { type: "log", level, message: value.message };
      if (isJsonObject(value.fields)) frame.fields = value.fields;
      return frame;
    }
    case "turn_done": {
      if (!nonNegativeInt(value.turn)) throw new AgentFrameError("turn_done.turn must be an integer");
      const error = value.error === undefined || value.error === null ? undefined : agentError(value.error);
      if (value.error && !error) throw new AgentFrameError("turn_done.error must be {message}");
      return error ? { type: "turn_done", turn: value.turn, error } : { type: "turn_done", turn: value.turn };
    }
    case "stopped":
      return { type: "stopped" };
    case "schedule":
      return scheduleFrame(value);
    case "fatal":
      return { type: "fatal", error: agentError(value.error) ?? { message: "agent failed to start" } };
    default:
      throw new AgentFrameError(`unknown frame type ${JSON.stringify(value.type).slice(0, 40)}`);
  }
}

function scheduleFrame(value: JsonObject): ScheduleFrame {
  const { id, op } = value;
  if (typeof id !== "string" || id.length === 0 || id.length > 128) throw new AgentFrameError("schedule.id must be a string of 1-128 characters");
  if (op === "list") return { type: "schedule", id, op };
  if (op === "cancel") {
    if (typeof value.scheduleId !== "string" || value.scheduleId.length === 0 || value.scheduleId.length > 128) throw new AgentFrameError("schedule.scheduleId must be a string of 1-128 characters");
    return { type: "schedule", id, op, scheduleId: value.scheduleId };
  }
  if (op !== "create") throw new AgentFrameError('schedule.op must be "create", "cancel" or "list"');
  if (!isJsonObject(value.when)) throw new AgentFrameError("schedule.when must be an object");
  if (value.message !== undefined && !isJsonObject(value.message)) throw new AgentFrameError("schedule.message must be an object");
  return { type: "schedule", id, op, when: value.when, message: isJsonObject(value.message) ? value.message : {} };
}
