/**
 * The coordinator <-> agent process protocol, version 1: how it runs. The frames themselves are defined once,
 * in proto/podium/agent/v1/agent-protocol.schema.json; `npm run generate` writes their types and decoders
 * (sdk/typescript/src/protocol.gen.ts, the TypeScript SDK's module, which the coordinator imports too) and the
 * Python SDK's types (sdk/python/podium_agent/protocol.py). Both SDKs implement exactly this.
 *
 * Transport
 * - The coordinator spawns the agent runner with the entry file as its argument (or, for a warm runner
 *   spawned before its agent was asked for, without it: then `init.entry` names it), cwd = the agent's
 *   workspace, and four stdio slots: 0 = host -> agent frames, 1 = stdout (logged, level info),
 *   2 = stderr (logged, level warn), 3 = agent -> host frames.
 * - A frame is one JSON object on one line (NDJSON, UTF-8, '\n' terminated). Nothing else is ever
 *   written to fd 3; print() / console.log go to stdout and end up in logs.db.
 * - The coordinator validates every agent -> host frame (parseAgentFrame below, with the decoder generated
 *   from the schema); a malformed frame is logged and dropped, never forwarded.
 *
 * Life of a process
 * 1. host: `init` (always the first frame). An SDK whose protocol version is not `init.protocol` sends
 *    `fatal` (naming both versions) and exits 1. The agent loads the entry module. When `stateVersion`
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
import { isJsonObject } from "../shared/json.js";
import { jsonDepthExceeds, MAX_JSON_DEPTH } from "../shared/parse-client-json.js";
import { decodeAgentToHost, FrameError, type AgentToHost } from "../../sdk/typescript/src/protocol.gen.js";

export { AGENT_PROTOCOL_VERSION, FrameError, LOG_LEVELS } from "../../sdk/typescript/src/protocol.gen.js";
export type { AgentError, AgentToHost, HostToAgent, InitFrame, LogLevel, ScheduleFrame } from "../../sdk/typescript/src/protocol.gen.js";

/** Event types after which the host does not add its own `complete` for the turn. */
export const TURN_END_EVENTS: ReadonlySet<string> = new Set(["complete", "stream_end", "stream_complete"]);

/** Validates one agent -> host line. Throws FrameError with a reason on anything malformed. */
export function parseAgentFrame(line: string): AgentToHost {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new FrameError("frame is not valid JSON");
  }
  if (!isJsonObject(value) || typeof value.type !== "string") throw new FrameError("frame has no type");
  // The frame itself is one level; its content gets what clients get (protobuf Struct recursion bounds it).
  if (jsonDepthExceeds(value, MAX_JSON_DEPTH + 2)) throw new FrameError(`frame nests deeper than ${MAX_JSON_DEPTH} levels`);
  return decodeAgentToHost(value);
}
