/**
 * A stored schedule as it moves on and as the agent and the API see it (the `when` grammar and cron
 * parsing are in shared/schedule-when.ts).
 */
import { nextCronRun } from "../shared/schedule-when.js";
import type { JsonObject } from "../shared/json.js";
import type { ScheduleRow } from "./store/schedule-store.js";

/** Where a schedule goes after firing at `now` for the run due at its dueAt: a cron's next run, else nowhere. */
export function nextDueAfterFiring(schedule: ScheduleRow, now: number): number | undefined {
  return schedule.kind === "cron" ? nextCronRun(schedule.spec, Math.max(now, schedule.dueAt)) : undefined;
}

/** The `when` a schedule was made with, as the agent and the API show it. */
export function scheduleWhen(schedule: Pick<ScheduleRow, "kind" | "spec">): JsonObject {
  if (schedule.kind === "delay") return { delay_ms: Number(schedule.spec) };
  return schedule.kind === "date" ? { at: schedule.spec } : { cron: schedule.spec };
}

/** A schedule as the agent (ctx.schedules()) and the REST API see it. */
export function scheduleJson(schedule: ScheduleRow): JsonObject {
  return {
    id: schedule.id,
    when: scheduleWhen(schedule),
    message: schedule.message,
    due_at: new Date(schedule.dueAt).toISOString(),
    created_at: new Date(schedule.createdAt).toISOString(),
    source: schedule.source,
  };
}
