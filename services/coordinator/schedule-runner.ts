/**
 * Runs agents' schedules (schedule-spec.ts, store/schedule-store.ts) on the coordinator that holds their
 * instance: one timer per instance for its soonest schedule, kept while the instance hibernates (a due
 * schedule wakes it). A due schedule becomes a normal turn: its message plus `{"scheduled": {"id",
 * "due_at"}}`, recorded atomically with the schedule's move to its next run, then `schedule.fired`.
 * Also answers the agent's ctx.schedule / cancelSchedule / schedules, and keeps the deployment's
 * podium.json `schedules` (crons) in the agent's table.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { AgentInstance } from "./agent-instance.js";
import type { ScheduleFrame } from "./agent-protocol.js";
import { nextDueAfterFiring, scheduleJson } from "./schedule-spec.js";
import { MAX_SCHEDULES, nextCronRun, parseScheduleWhen } from "../shared/schedule-when.js";
import type { ScheduleRow } from "./store/schedule-store.js";
import { errorMessage } from "../shared/errors.js";
import { newId } from "../shared/ids.js";
import type { JsonObject } from "../shared/json.js";
import type { Logger } from "../shared/logger.js";
import { PlatformEvent } from "../shared/platform-events.js";

/** A cron every instance of a deployment gets (podium.json `schedules`). */
export interface DeclaredSchedule {
  name: string;
  cron: string;
  message: JsonObject;
}

export interface ScheduleRunnerDeps {
  /** Wakes a hibernated instance (resolves at once for an awake one). */
  wake(instance: AgentInstance): Promise<void>;
  logger: Logger;
}

/** How long a schedule that could not fire (no capacity to wake, a failed start) waits before trying again. */
const RETRY_MS = 5000;
const MAX_SCHEDULE_MESSAGE_BYTES = 256 * 1024;
const MAX_TIMER_MS = 2 ** 31 - 1;
const iso = (ms: number) => new Date(ms).toISOString();

export class ScheduleRunner {
  private readonly timers = new Map<AgentInstance, { timer: NodeJS.Timeout; at: number }>();
  private readonly firing = new Set<AgentInstance>();

  constructor(private readonly deps: ScheduleRunnerDeps) {}

  /** Does what the agent's schedule frame asked; returns its answer's value (`{error}` when refused). */
  handle(instance: AgentInstance, frame: ScheduleFrame): JsonObject {
    try {
      const schedules = instance.store.schedules;
      if (frame.op === "list") return { schedules: schedules.list().map(scheduleJson) };
      if (frame.op === "cancel") {
        const cancelled = schedules.delete(frame.scheduleId);
        if (cancelled) this.arm(instance);
        return { cancelled };
      }
      if (schedules.size() >= MAX_SCHEDULES) throw new ConnectError(`the agent has ${MAX_SCHEDULES} schedules, the most it may hold; cancel some first`, Code.ResourceExhausted);
      if (Buffer.byteLength(JSON.stringify(frame.message)) > MAX_SCHEDULE_MESSAGE_BYTES) {
        throw new ConnectError(`a schedule's message may hold at most ${MAX_SCHEDULE_MESSAGE_BYTES} bytes of JSON`, Code.InvalidArgument);
      }
      const now = Date.now();
      const { kind, spec, dueAt } = parseScheduleWhen(frame.when, now);
      const row: ScheduleRow = { id: newId("sch"), kind, spec, message: frame.message, dueAt, createdAt: now, source: "agent" };
      schedules.put(row);
      this.arm(instance);
      return { schedule: scheduleJson(row) };
    } catch (err) {
      return { error: err instanceof ConnectError ? err.rawMessage : errorMessage(err) };
    }
  }

  /**
   * Puts the deployment's declared crons in the agent's table (at each start: a new deployment version may
   * change them): new ones are due at their next run, changed ones replaced, removed ones deleted.
   */
  declare(instance: AgentInstance, declared: readonly DeclaredSchedule[]): void {
    const schedules = instance.store.schedules;
    const now = Date.now();
    const stale = new Map(
      schedules
        .list()
        .filter((s) => s.source === "deployment")
        .map((s) => [s.id, s]),
    );
    for (const { name, cron, message } of declared) {
      const id = `deployment:${name}`;
      const previous = stale.get(id);
      stale.delete(id);
      if (previous && previous.spec === cron && JSON.stringify(previous.message) === JSON.stringify(message)) continue;
      const dueAt = nextCronRun(cron, now);
      if (dueAt !== undefined) schedules.put({ id, kind: "cron", spec: cron, message, dueAt, createdAt: now, source: "deployment" });
    }
    for (const id of stale.keys()) schedules.delete(id);
  }

  /** Sets the instance's timer for its soonest schedule (it must be awake); a due one fires at once. */
  arm(instance: AgentInstance): void {
    this.setTimer(instance, instance.store.schedules.nextDueAt());
  }

  /** Sets the instance's timer for `at` (a hibernated instance restored after a restart: its store is closed). */
  armAt(instance: AgentInstance, at: number | undefined): void {
    this.setTimer(instance, at);
  }

  /** Drops the instance's timer (it ended). */
  cancel(instance: AgentInstance): void {
    const armed = this.timers.get(instance);
    if (armed) clearTimeout(armed.timer);
    this.timers.delete(instance);
  }

  close(): void {
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  private setTimer(instance: AgentInstance, at: number | undefined): void {
    this.cancel(instance);
    if (at === undefined || !instance.live) return;
    // A later run than a timer can hold is re-armed from the timer, which then finds nothing due.
    const timer = setTimeout(() => void this.fire(instance), Math.min(Math.max(0, at - Date.now()), MAX_TIMER_MS));
    timer.unref();
    this.timers.set(instance, { timer, at });
  }

  /** Fires every due schedule of the instance (waking it first), then re-arms. */
  async fire(instance: AgentInstance): Promise<void> {
    if (this.firing.has(instance) || !instance.live) return;
    // Not due yet (a run further ahead than a timer holds): a hibernated agent is not woken for it.
    const at = this.timers.get(instance)?.at;
    if (!instance.awake && at !== undefined && at > Date.now()) return this.setTimer(instance, at);
    this.firing.add(instance);
    try {
      await this.deps.wake(instance);
      if (!instance.live || !instance.awake) return;
      const now = Date.now();
      for (const schedule of instance.store.schedules.due(now)) {
        try {
          this.fireOne(instance, schedule, now);
        } catch (err) {
          // Retried later: the queue is full (scheduled turns wait like any message), or the instance is
          // stopping. Anything else would fail again every time: that schedule is dropped, with the reason.
          const code = ConnectError.from(err).code;
          if (code === Code.ResourceExhausted || code === Code.FailedPrecondition || code === Code.Unavailable) throw err;
          instance.store.schedules.delete(schedule.id);
          this.deps.logger.error(`dropped schedule ${schedule.id}: it cannot run (${errorMessage(err)})`, { instance_id: instance.instanceId, agent_id: instance.agentId });
        }
      }
      this.arm(instance);
    } catch (err) {
      if (!instance.live) return;
      this.deps.logger.warn(`a due schedule could not run; retrying in ${RETRY_MS / 1000} s: ${errorMessage(err)}`, { instance_id: instance.instanceId, agent_id: instance.agentId });
      this.setTimer(instance, Date.now() + RETRY_MS);
    } finally {
      this.firing.delete(instance);
    }
  }

  private fireOne(instance: AgentInstance, schedule: ScheduleRow, now: number): void {
    const dueAt = iso(schedule.dueAt);
    const next = nextDueAfterFiring(schedule, now);
    const content: JsonObject = { ...schedule.message, scheduled: { id: schedule.id, due_at: dueAt } };
    // Queued like any message: it never interrupts, and waits (retried) while the queue is full.
    const sent = instance.send(content, "enqueue", (inbound) => instance.store.schedules.fire(schedule, inbound, next));
    instance.platformEvent(PlatformEvent.scheduleFired, { id: schedule.id, due_at: dueAt, turn: sent.turn, ...(next !== undefined ? { next_due_at: iso(next) } : {}) });
  }
}
