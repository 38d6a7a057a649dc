/**
 * messages.db as the ledger a restored agent is reconciled by (services/replication/restore-reconcile.ts):
 * its turn ends, the state versions and workspace iterations its turns recorded, and the cut back to a
 * turn end. The store owns these queries, so no other service runs SQL against its table.
 */
import { INBOUND_MESSAGE_TYPE, PlatformEvent } from "../../shared/platform-events.js";
import type { JsonObject } from "../../shared/json.js";
import { COLUMNS, fromDb, type DbRow, type MessageRow } from "./message-row.js";
import type { SqliteDatabase } from "./sqlite.js";

/** A turn ends with turn.done, or with its instance's end (a turn cut by a crash records error + terminated). */
const TURN_ENDS = `message_type IN ('${PlatformEvent.turnDone}', '${PlatformEvent.terminated}')`;

export class MessageLedger {
  constructor(
    private readonly db: SqliteDatabase,
    /** Called after the ledger added or removed rows: the log re-reads its newest seq. */
    private readonly changed: () => void,
  ) {}

  /** Outbound events of these types, oldest first. */
  *outbound(types: readonly string[]): IterableIterator<MessageRow> {
    const placeholders = types.map(() => "?").join(", ");
    const rows = this.db.prepare<string[], DbRow>(`SELECT ${COLUMNS} FROM messages WHERE direction = 'outbound' AND message_type IN (${placeholders}) ORDER BY seq`).raw();
    for (const row of rows.iterate(...types)) yield fromDb(row);
  }

  /** The seq of the newest turn end before `beforeSeq` (0: none). */
  lastTurnEnd(beforeSeq = Number.MAX_SAFE_INTEGER): number {
    return this.number(`SELECT max(seq) FROM messages WHERE ${TURN_ENDS} AND seq < ?`, beforeSeq);
  }

  /** The seq of the oldest event of a turn after `seq` (0: none). */
  firstTurnEventAfter(seq: number): number {
    return this.number("SELECT min(seq) FROM messages WHERE seq > ? AND direction = 'outbound' AND turn > 0", seq);
  }

  /** The turns with events after `seq`, ascending. */
  turnsAfter(seq: number): number[] {
    return this.db.prepare<[number], number>("SELECT DISTINCT turn FROM messages WHERE seq > ? AND direction = 'outbound' AND turn > 0 ORDER BY turn").pluck().all(seq);
  }

  /** Removes every message after `seq` except the acknowledged ones (inbound process_message); returns how many. */
  cutAfter(seq: number): number {
    const removed = this.db.prepare<[number, string]>("DELETE FROM messages WHERE seq > ? AND NOT (direction = 'inbound' AND message_type = ?)").run(seq, INBOUND_MESSAGE_TYPE).changes;
    this.changed();
    return removed;
  }

  /** The newest message of this type. */
  newest(messageType: string): MessageRow | undefined {
    const row = this.db.prepare<[string], DbRow>(`SELECT ${COLUMNS} FROM messages WHERE message_type = ? ORDER BY seq DESC LIMIT 1`).raw().get(messageType);
    return row && fromDb(row);
  }

  /** Stores a platform event (instance "", turn 0) at `seq`, past the newest: the seqs between stay unused. */
  appendAt(seq: number, messageType: string, content: JsonObject, timestamp: number): void {
    this.db
      .prepare<[number, string, string, number]>("INSERT INTO messages (seq, direction, instance_id, turn, message_type, content, timestamp) VALUES (?, 'outbound', '', 0, ?, ?, ?)")
      .run(seq, messageType, JSON.stringify(content), timestamp);
    this.changed();
  }

  /** Runs `fn` in one transaction of the ledger's database. */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  private number(sql: string, ...params: number[]): number {
    return (this.db
      .prepare<number[], number | null>(sql)
      .pluck()
      .get(...params) ?? 0) as number;
  }
}
