/**
 * Litestream v0.3.13 JSON log lines -> typed events. The supervisor runs Litestream at debug level
 * because two facts it needs are only logged there ("replica sync: calc new pos", the replica's
 * position read back from S3 after a start). The frequent debug lines (one "sync" per database per
 * monitor tick) are dropped by a substring check before any JSON parsing.
 *
 * Lines used (msg):
 *   "replica sync: calc new pos"  position = where the replica in S3 ends (after a (re)start)
 *   "wal segment written"         position = where the upload started, sz = its WAL bytes
 *   "snapshot written"            position = what the snapshot covers
 *   "sync: new generation"        generation, reason
 *   level ERROR                   error (upload failures, S3 unreachable, …)
 */
import { parsePosition, type LitestreamPosition } from "./litestream-config.js";

export type LitestreamLogEvent =
  /** The replica now ends at `position` (every byte of the WAL before it is in S3). */
  | { type: "replicated"; db: string; position: LitestreamPosition; source: "calc" | "segment" | "snapshot"; at: number }
  | { type: "generation"; db: string; generation: string; reason: string; at: number }
  | { type: "error"; db: string | undefined; message: string; at: number };

const INTERESTING = ['"msg":"replica sync: calc new pos"', '"msg":"wal segment written"', '"msg":"snapshot written"', '"msg":"sync: new generation"', '"level":"ERROR"'];

function text(record: Record<string, unknown>, key: string): string | undefined {
  const value = record[key];
  return typeof value === "string" ? value : undefined;
}

/** One stdout line -> an event, or undefined for lines the supervisor does not use. */
export function parseLitestreamLine(line: string, now = Date.now()): LitestreamLogEvent | undefined {
  if (!INTERESTING.some((needle) => line.includes(needle))) return undefined;
  let record: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(line);
    if (typeof parsed !== "object" || parsed === null) return undefined;
    record = parsed as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const msg = text(record, "msg");
  const db = text(record, "db");
  if (text(record, "level") === "ERROR") {
    return { type: "error", db, message: `${msg ?? "error"}: ${text(record, "error") ?? ""}`.trim(), at: now };
  }
  if (!db) return undefined;
  if (msg === "sync: new generation") {
    const generation = text(record, "generation");
    return generation ? { type: "generation", db, generation, reason: text(record, "reason") ?? "", at: now } : undefined;
  }
  const position = parsePosition(record.position);
  if (!position) return undefined;
  if (msg === "replica sync: calc new pos") return { type: "replicated", db, position, source: "calc", at: now };
  if (msg === "snapshot written") return { type: "replicated", db, position, source: "snapshot", at: now };
  if (msg === "wal segment written") {
    const size = record.sz;
    if (typeof size !== "number") return undefined;
    return { type: "replicated", db, position: { ...position, offset: position.offset + size }, source: "segment", at: now };
  }
  return undefined;
}
