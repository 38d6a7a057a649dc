/**
 * The event types Podium itself records in an agent's stream, beside the agent's own events
 * (docs/client-events.md): each name written once, here, for every module that writes or reads them.
 */
import type { PlatformEvents } from "../../sdk/typescript/src/agent-events.js";

export const PlatformEvent = {
  /** The last event of every acknowledged turn: `{turn, ok, cancelled?}`. */
  turnDone: "turn.done",
  /** A turn failed, or the platform reports a problem: `{message, code?, turn?}`. */
  error: "error",
  /** A turn whose agent sent no end event of its own ended normally. */
  complete: "complete",
  /** One state version: `{version, patch}`. */
  stateDelta: "state.delta",
  /** What a turn changed in the workspace: `{iteration, files}`. */
  workspaceChanged: "workspace.changed",
  /** The instance is stopping: `{grace_ms}`. */
  terminating: "terminating",
  /** The instance ended: `{reason, exit_code, signal}`. */
  terminated: "terminated",
  /** The instance's process stopped to save resources; the next message wakes it. */
  hibernated: "hibernated",
  woke: "woke",
  scheduleFired: "schedule.fired",
  /** A question or permission request of the agent was answered. */
  requestResolved: "tool.approval_resolved",
  /** The agent was restored after an unclean loss of its coordinator (replication). */
  agentRestored: "agent.restored",
} as const;

/**
 * The SDK's `PlatformEvents` (sdk/typescript/src/agent-events.ts: what readers of a stream see typed, and what
 * agents may not send) names the same events: tsc fails here when a name is added or renamed on one side only.
 * `error` and `complete` are seed events that agents send too.
 */
type RecordedByPodium = Exclude<(typeof PlatformEvent)[keyof typeof PlatformEvent], typeof PlatformEvent.error | typeof PlatformEvent.complete>;
type SameNames<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
export const PLATFORM_EVENTS_MATCH_SDK: SameNames<RecordedByPodium, keyof PlatformEvents> = true;

/** The message type of every inbound message (a client's turn). */
export const INBOUND_MESSAGE_TYPE = "process_message";
