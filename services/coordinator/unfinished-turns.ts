/**
 * The delivery promise (docs/runtime.md "Delivery"): every acknowledged message — an inbound
 * `process_message` in messages.db, whose seq names its turn — ends with a `turn.done` for that turn,
 * after it ran or with an `error` saying why it will not run. A coordinator that stopped without ending its
 * instances (kill -9, host lost) leaves messages without one; findUnfinishedTurns finds them when the
 * agent's next instance starts.
 *
 * Turns run one at a time in seq order and end in that order, so a `turn.done` for turn T means every
 * message before T is finished: the log is read backwards only down to the newest turn end.
 */
import type { JsonObject } from "../shared/json.js";
import type { MessageLog } from "./store/message-log.js";
import { TurnTrace } from "./turn-trace.js";
import { turnFailed, type InstanceJournal } from "./instance-journal.js";
import { INBOUND_MESSAGE_TYPE, PlatformEvent } from "../shared/platform-events.js";

export interface UnfinishedTurn {
  /** The seq of the inbound message (= its turn). */
  turn: number;
  content: JsonObject;
  /** Its spans, when the message that started it is traced (not kept across restarts). */
  trace?: TurnTrace | undefined;
}

export interface UnfinishedTurns {
  /** Turns with recorded events: the agent was running them when its coordinator stopped. */
  begun: UnfinishedTurn[];
  /** Acknowledged messages nothing was recorded for: they never reached the agent, or left no trace. */
  waiting: UnfinishedTurn[];
}

/** Rows read back at first: most logs end with a turn end, so a few rows settle it; later pages grow to PAGE. */
const FIRST_PAGE = 16;
const PAGE = 512;

/** Unfinished turns, each list in seq order. Cost: the rows after the newest turn end (one turn and the queue). */
export function findUnfinishedTurns(messages: Pick<MessageLog, "listBefore">): UnfinishedTurns {
  const inbound: UnfinishedTurn[] = [];
  const done = new Set<number>();
  const begun = new Set<number>();
  /** Before `turn.done` existed for ended instances, an instance's end recorded only `error` for each of its turns. */
  const erroredBeforeEnd = new Set<number>();
  let ended = false;
  let floor = 0;
  let before = Number.MAX_SAFE_INTEGER;
  let size = FIRST_PAGE;
  scan: for (; ; size = Math.min(size * 4, PAGE)) {
    // Outbound rows without their content: only inbound messages are queued again.
    const page = messages.listBefore(before, size, { inboundContent: true });
    for (const row of page) {
      if (row.seq <= floor) break scan;
      if (row.direction === "inbound") {
        if (row.messageType === INBOUND_MESSAGE_TYPE) inbound.push({ turn: row.seq, content: row.content ?? {} });
        continue;
      }
      if (row.messageType === PlatformEvent.terminated) ended = true;
      if (row.turn <= 0) continue;
      begun.add(row.turn);
      if (row.messageType === PlatformEvent.turnDone) {
        done.add(row.turn);
        floor = Math.max(floor, row.turn);
      } else if (row.messageType === PlatformEvent.error && ended) {
        erroredBeforeEnd.add(row.turn);
      }
    }
    const last = page[page.length - 1];
    if (page.length < size || !last) break;
    before = last.seq;
  }
  const result: UnfinishedTurns = { begun: [], waiting: [] };
  for (const message of inbound.reverse()) {
    if (message.turn <= floor || done.has(message.turn) || erroredBeforeEnd.has(message.turn)) continue;
    (begun.has(message.turn) ? result.begun : result.waiting).push(message);
  }
  return result;
}

/** The `error` recorded for a turn that had begun when its coordinator stopped (it is not run again). */
export const INTERRUPTED_MESSAGE = "interrupted: the coordinator stopped during this turn";

/**
 * At an instance's start: turns that had begun get `error` + `turn.done` (they are not run again; what they
 * left in the workspace is recorded by the next capture, since the first one waits for the change-tracking
 * thread that has just started); returns the acknowledged messages that never ran, to queue again in order.
 */
export function settleUnfinishedTurns(messages: Pick<MessageLog, "listBefore">, journal: Pick<InstanceJournal, "emitMany" | "log">): UnfinishedTurn[] {
  const { begun, waiting } = findUnfinishedTurns(messages);
  if (begun.length > 0) journal.emitMany(begun.flatMap(({ turn }) => turnFailed(turn, { message: INTERRUPTED_MESSAGE, code: "aborted", turn })));
  if (begun.length + waiting.length > 0) {
    journal.log(
      "warn",
      "platform",
      `the agent's previous process ended with its coordinator: ${begun.length} interrupted turn(s) recorded as failed, ${waiting.length} acknowledged message(s) queued again`,
      {
        interrupted: begun.map((t) => t.turn),
        queued: waiting.map((t) => t.turn),
      },
    );
  }
  return waiting;
}

/**
 * The queue of an instance whose process ended. When it served, its turns fail (`error`, `turn.done`). When it
 * never served (failed to start, or its create was cancelled) nothing ran, so the queue (messages queued again
 * at start, and any sent while starting) stays unfinished in messages.db and runs, in order, on the agent's
 * next instance that starts.
 */
export function endQueuedTurns(queue: readonly UnfinishedTurn[], served: boolean, journal: InstanceJournal): void {
  const pending = TurnTrace.dropped(queue, "the instance ended before it ran");
  if (pending.length === 0) return;
  if (!served) journal.log("warn", "platform", `${pending.length} acknowledged message(s) stay queued for the agent's next instance`);
  else journal.emitMany(pending.flatMap((turn) => turnFailed(turn, { message: "instance ended before this message was processed", turn })));
}
