/**
 * logs.db: an agent's stdout / stderr lines, `log` frames and platform notes. Messages are capped at
 * LOG_MESSAGE_MAX_BYTES (UTF-8) and `fields` at LOG_FIELDS_MAX_BYTES of JSON; nothing is deleted
 * (no retention yet, see docs/storage.md). Callers never pass secrets here.
 */
import type { JsonObject } from "../../shared/json.js";
import { checkPaging } from "./message-log.js";
import { closeDatabase, closedError, storeError, type SqliteDatabase } from "./sqlite.js";

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogSource = "stdout" | "stderr" | "agent" | "platform";

export interface LogRow {
  id: number;
  /** Epoch milliseconds. */
  timestamp: number;
  level: LogLevel;
  source: LogSource;
  message: string;
  instanceId: string;
  fields?: JsonObject;
}

export type NewLogRow = Omit<LogRow, "id" | "timestamp"> & { timestamp?: number };

export const LOG_MESSAGE_MAX_BYTES = 64 * 1024;
export const LOG_FIELDS_MAX_BYTES = 64 * 1024;

type DbRow = [id: number, timestamp: number, level: LogLevel, source: LogSource, message: string, instanceId: string, fields: string | null];

/**
 * Cuts `text` to at most `maxBytes` of UTF-8, on a character boundary, ending with a marker
 * "…[truncated, N bytes]" that gives the original size. Short strings are returned as they are.
 */
export function truncateUtf8(text: string, maxBytes: number): string {
  if (text.length * 3 <= maxBytes) return text; // a UTF-16 unit is at most 3 UTF-8 bytes
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length <= maxBytes) return text;
  const marker = `…[truncated, ${bytes.length} bytes]`;
  let end = Math.max(0, maxBytes - Buffer.byteLength(marker));
  while (end > 0 && ((bytes[end] as number) & 0xc0) === 0x80) end--; // do not split a character
  return bytes.subarray(0, end).toString("utf8") + marker;
}

/** The JSON to store for `fields`, replaced by {truncated: true, bytes} when too big. */
function storedFields(fields: JsonObject | undefined): { text: string; value: JsonObject } | undefined {
  if (fields === undefined || fields === null) return undefined;
  const text = JSON.stringify(fields);
  const bytes = text.length * 3 <= LOG_FIELDS_MAX_BYTES ? text.length : Buffer.byteLength(text);
  if (bytes <= LOG_FIELDS_MAX_BYTES) return { text, value: fields };
  const value = { truncated: true, bytes };
  return { text: JSON.stringify(value), value };
}

function fromDb(row: DbRow): LogRow {
  const log: LogRow = { id: row[0], timestamp: row[1], level: row[2], source: row[3], message: row[4], instanceId: row[5] };
  if (row[6] !== null) log.fields = JSON.parse(row[6]) as JsonObject;
  return log;
}

export class LogStore {
  private readonly insert;
  private readonly select;
  private readonly insertMany;

  constructor(private readonly db: SqliteDatabase) {
    this.insert = db.prepare<[number, LogLevel, LogSource, string, string, string | null]>("INSERT INTO logs (timestamp, level, source, message, instance_id, fields) VALUES (?, ?, ?, ?, ?, ?)");
    this.select = db.prepare<[number, number], DbRow>("SELECT id, timestamp, level, source, message, instance_id, fields FROM logs WHERE id > ? ORDER BY id LIMIT ?").raw();
    this.insertMany = db.transaction((rows: readonly NewLogRow[]) => rows.map((row) => this.insertRow(row)));
  }

  /** Stores one line (its own transaction). The returned row carries the stored (maybe truncated) text. */
  append(row: NewLogRow): LogRow {
    if (!this.db.open) throw closedError("log store");
    try {
      return this.insertRow(row);
    } catch (err) {
      throw storeError(err, "append log");
    }
  }

  /** Stores several lines in one transaction (for bursts of output): all or none. */
  appendMany(rows: readonly NewLogRow[]): LogRow[] {
    if (!this.db.open) throw closedError("log store");
    try {
      return this.insertMany(rows);
    } catch (err) {
      throw storeError(err, "append logs");
    }
  }

  /** Up to `limit` rows with id > after, ascending. */
  list(after: number, limit: number): LogRow[] {
    if (!this.db.open) throw closedError("log store");
    checkPaging(after, limit);
    return limit === 0 ? [] : this.select.all(after, limit).map(fromDb);
  }

  close(): void {
    closeDatabase(this.db);
  }

  private insertRow(row: NewLogRow): LogRow {
    const timestamp = row.timestamp ?? Date.now();
    const message = truncateUtf8(row.message, LOG_MESSAGE_MAX_BYTES);
    const fields = storedFields(row.fields);
    const id = Number(this.insert.run(timestamp, row.level, row.source, message, row.instanceId, fields?.text ?? null).lastInsertRowid);
    const log: LogRow = { id, timestamp, level: row.level, source: row.source, message, instanceId: row.instanceId };
    if (fields) log.fields = fields.value;
    return log;
  }
}
