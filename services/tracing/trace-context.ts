/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` header that names a trace
 * and the span a hop continues from, and `tracestate`, the vendors' opaque companion, carried as is.
 */
import { randomBytes } from "node:crypto";

export interface TraceContext {
  /** 32 lowercase hex digits, not all zero. */
  traceId: string;
  /** The parent's span id for the next hop: 16 lowercase hex digits, not all zero. */
  spanId: string;
  /** Trace flags; bit 0 is `sampled`. */
  flags: number;
  /** The `tracestate` header as received (at most 512 characters), when there was one. */
  traceState?: string;
}

export const SAMPLED = 0x01;

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE = "0".repeat(32);
const ZERO_SPAN = "0".repeat(16);
/** The spec's limit on what a participant must propagate. */
const MAX_TRACESTATE = 512;

/**
 * A `traceparent` (and its `tracestate`) as a context, or undefined for a missing or invalid one (the spec
 * says: start a new trace then, never fail the request). Version 00 must be exactly 55 characters; later
 * versions may append fields, which are ignored; version ff is invalid.
 */
export function parseTraceparent(traceparent: string | null | undefined, tracestate?: string | null): TraceContext | undefined {
  if (typeof traceparent !== "string" || traceparent.length < 55 || traceparent.length > 512) return undefined;
  const match = TRACEPARENT.exec(traceparent.trim());
  if (!match) return undefined;
  const [, version, traceId, spanId, flags, rest] = match as unknown as [string, string, string, string, string, string | undefined];
  if (version === "ff" || (version === "00" && rest !== undefined) || traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined;
  const context: TraceContext = { traceId, spanId, flags: Number.parseInt(flags, 16) };
  const state = typeof tracestate === "string" ? tracestate.trim() : "";
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejects a tracestate carrying control characters
  if (state && state.length <= MAX_TRACESTATE && !/[\x00-\x1f\x7f]/.test(state)) context.traceState = state;
  return context;
}

/** The `traceparent` value of a context (version 00). */
export function formatTraceparent(context: TraceContext): string {
  return `00-${context.traceId}-${context.spanId}-${(context.flags & 0xff).toString(16).padStart(2, "0")}`;
}

/** `traceparent` and, when present, `tracestate`, as headers or metadata of an outgoing call. */
export function traceHeaders(context: TraceContext): Record<string, string> {
  const headers: Record<string, string> = { traceparent: formatTraceparent(context) };
  if (context.traceState) headers.tracestate = context.traceState;
  return headers;
}

/** Random ids from a pooled buffer: one `randomBytes` call per 256 ids instead of one per id. */
const POOL_BYTES = 4096;
let pool = Buffer.alloc(0);
let poolAt = POOL_BYTES;

function randomHex(bytes: number, zero: string): string {
  for (;;) {
    if (poolAt + bytes > pool.length) [pool, poolAt] = [randomBytes(POOL_BYTES), 0];
    const hex = pool.toString("hex", poolAt, poolAt + bytes);
    poolAt += bytes;
    if (hex !== zero) return hex;
  }
}

export function newTraceId(): string {
  return randomHex(16, ZERO_TRACE);
}

export function newSpanId(): string {
  return randomHex(8, ZERO_SPAN);
}
