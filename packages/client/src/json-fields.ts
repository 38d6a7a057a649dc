/**
 * Liberal readers for REST answers: a field may arrive snake_case or camelCase, a uint64 as a
 * number or a decimal string. Shared by the file and instance normalisers.
 */
export type Rec = Record<string, unknown>;

export function isRecord(value: unknown): value is Rec {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** `record.snake_key`, else `record.snakeKey`. */
export function field(record: Rec, snake: string): unknown {
  if (record[snake] !== undefined) return record[snake];
  return record[snake.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())];
}

export function str(record: Rec, key: string): string | undefined {
  const value = field(record, key);
  return typeof value === "string" ? value : undefined;
}

/** A non-negative safe integer (JSON number or decimal string). */
export function count(record: Rec, key: string): number | undefined {
  const value = field(record, key);
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) return value;
  if (typeof value === "string" && /^\d{1,15}$/.test(value)) return Number(value);
  return undefined;
}

/** An RFC 3339 string or epoch milliseconds, normalised to RFC 3339. */
export function time(record: Rec, key: string): string | undefined {
  const value = field(record, key);
  if (typeof value === "string" && !Number.isNaN(Date.parse(value))) return new Date(value).toISOString();
  if (typeof value === "number" && Number.isFinite(value)) return new Date(value).toISOString();
  return undefined;
}
