/**
 * An agent's schedules, in messages.db (migration 2): what `ctx.schedule()` and the deployment's
 * podium.json `schedules` asked for, each with the time it is next due. A due schedule is fired by
 * recording its inbound message and moving it on (a cron to its next run, a one-off deleted) in one
 * transaction: after a crash it either fired (and the delivery promise runs its turn) or it is still due.
 */
import type { MessageLog, MessageRow, NewMessage } from "./message-log.js";
import { closedError, storeError, type SqliteDatabase } from "./sqlite.js";
import type { JsonObject } from "../../shared/json.js";

export type { ScheduleKind } from "../../shared/schedule-when.js";
import type { ScheduleKind } from "../../shared/schedule-when.js";
export type ScheduleSource = "agent" | "deployment";

export interface ScheduleRow {
  id: string;
  kind: ScheduleKind;
  /** delay: the delay in ms; date: the RFC 3339 time; cron: the expression. */
  spec: string;
  message: JsonObject;
  /** When it is next due (epoch ms). */
  dueAt: number;
  createdAt: number;
  source: ScheduleSource;
}

type DbRow = [string, ScheduleKind, string, string, number, number, ScheduleSource];
const COLUMNS = "id, kind, spec, message, due_at, created_at, source";

function fromDb([id, kind, spec, message, dueAt, createdAt, source]: DbRow): ScheduleRow {
  return { id, kind, spec, message: JSON.parse(message) as JsonObject, dueAt, createdAt, source };
}

export class ScheduleStore {
  private readonly insert;
  private readonly remove;
  private readonly move;
  private readonly all;
  private readonly dueStmt;
  private readonly next;
  private readonly count;

  constructor(
    private readonly db: SqliteDatabase,
    private readonly messages: MessageLog,
  ) {
    this.insert = db.prepare<[string, string, string, string, number, number, string]>(`INSERT OR REPLACE INTO schedules (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)`);
    this.remove = db.prepare<[string]>("DELETE FROM schedules WHERE id = ?");
    this.move = db.prepare<[number, string]>("UPDATE schedules SET due_at = ? WHERE id = ?");
    this.all = db.prepare<[], DbRow>(`SELECT ${COLUMNS} FROM schedules ORDER BY due_at, id`).raw();
    this.dueStmt = db.prepare<[number], DbRow>(`SELECT ${COLUMNS} FROM schedules WHERE due_at <= ? ORDER BY due_at, id`).raw();
    this.next = db.prepare<[], number | null>("SELECT min(due_at) FROM schedules").pluck();
    this.count = db.prepare<[], number>("SELECT count(*) FROM schedules").pluck();
  }

  private open(): void {
    if (!this.db.open) throw closedError("schedules");
  }

  /** Adds a schedule, or replaces the one with its id. */
  put(row: ScheduleRow): void {
    this.open();
    try {
      this.insert.run(row.id, row.kind, row.spec, JSON.stringify(row.message), row.dueAt, row.createdAt, row.source);
    } catch (err) {
      throw storeError(err, "store schedule");
    }
  }

  /** Deletes a schedule; false when there was none with this id. */
  delete(id: string): boolean {
    this.open();
    return this.remove.run(id).changes > 0;
  }

  /** Every schedule, soonest first. */
  list(): ScheduleRow[] {
    this.open();
    return this.all.all().map(fromDb);
  }

  size(): number {
    this.open();
    return this.count.get() ?? 0;
  }

  /** When the soonest schedule is due (undefined: none). */
  nextDueAt(): number | undefined {
    this.open();
    return this.next.get() ?? undefined;
  }

  /** The schedules due at `now`, soonest first. */
  due(now: number): ScheduleRow[] {
    this.open();
    return this.dueStmt.all(now).map(fromDb);
  }

  /** Records a due schedule's inbound message and moves it to `nextDueAt` (undefined: deletes it), atomically. */
  fire(schedule: ScheduleRow, inbound: NewMessage, nextDueAt: number | undefined): MessageRow {
    this.open();
    return this.messages.appendWith(inbound, () => {
      if (nextDueAt === undefined) this.remove.run(schedule.id);
      else this.move.run(nextDueAt, schedule.id);
    });
  }
}
