/**
 * A coordinator's running counts since it started, read by its metrics (coordinator-metrics.ts): instance
 * life cycle, turns and events recorded, and how long creates took.
 */
import { Histogram } from "../shared/metrics.js";
import type { MessageRow } from "./store/message-log.js";
import { PlatformEvent } from "../shared/platform-events.js";

/** Upper bounds of the create -> ready histogram, in seconds (a warm create ~0.02, a cold one ~0.2). */
export const CREATE_SECONDS_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

export interface CoordinatorCounts {
  started: number;
  terminated: number;
  failed: number;
  hibernated: number;
  woken: number;
  /** Turns that ended (their turn.done recorded). */
  turns: number;
  /** Outbound messages recorded: the agents' events and the platform's. */
  events: number;
  /** CreateInstance calls that answered an instance (a wake of a hibernated one included), in seconds. */
  createSeconds: Histogram;
}

export function newCoordinatorCounts(): CoordinatorCounts {
  return { started: 0, terminated: 0, failed: 0, hibernated: 0, woken: 0, turns: 0, events: 0, createSeconds: new Histogram(CREATE_SECONDS_BUCKETS) };
}

/** An instance's `onRecorded`: counts the events it just recorded, and the turns they ended. */
export function countRecorded(counts: CoordinatorCounts): (rows: readonly MessageRow[]) => void {
  return (rows) => {
    counts.events += rows.length;
    for (const row of rows) if (row.messageType === PlatformEvent.turnDone) counts.turns++;
  };
}
