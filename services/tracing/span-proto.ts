/** Finished spans as CoordinatorService.GetTrace carries them (TraceSpan) and as GET /api/v1/traces/{trace_id} answers them. */
import { create, type JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { TraceSpanSchema, type TraceSpan } from "../../gen/podium/v1/coordinator_service_pb.js";
import { SpanKind, SpanStatusCode, type Attributes, type FinishedSpan } from "./tracer.js";

const TRACE_ID = /^[0-9a-f]{32}$/;

/** A trace id from a request: 32 lowercase hex digits (upper case accepted), else INVALID_ARGUMENT. */
export function requireTraceId(value: string): string {
  const id = value.toLowerCase();
  if (!TRACE_ID.test(id) || id === "0".repeat(32)) throw new ConnectError("trace_id must be 32 hex digits, not all zero", Code.InvalidArgument);
  return id;
}

export function spanToProto(span: FinishedSpan): TraceSpan {
  return create(TraceSpanSchema, {
    service: span.service,
    name: span.name,
    kind: span.kind,
    traceId: span.traceId,
    spanId: span.spanId,
    parentSpanId: span.parentSpanId ?? "",
    startMs: span.startMs,
    endMs: span.endMs,
    attributes: span.attributes,
    statusCode: span.status.code,
    statusMessage: span.status.message ?? "",
  });
}

function attributesOf(struct: JsonObject | undefined): Attributes {
  const attributes: Attributes = {};
  if (!struct) return attributes;
  for (const [key, value] of Object.entries(struct)) {
    if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") attributes[key] = value;
  }
  return attributes;
}

export function spanFromProto(span: TraceSpan): FinishedSpan {
  return {
    service: span.service,
    name: span.name,
    kind: span.kind as SpanKind,
    traceId: span.traceId,
    spanId: span.spanId,
    ...(span.parentSpanId ? { parentSpanId: span.parentSpanId } : {}),
    flags: 1,
    startMs: span.startMs,
    endMs: span.endMs,
    attributes: attributesOf(span.attributes),
    status: { code: span.statusCode === SpanStatusCode.ERROR ? SpanStatusCode.ERROR : SpanStatusCode.UNSET, ...(span.statusMessage ? { message: span.statusMessage } : {}) },
  };
}

/** One span of the REST answer (snake_case like the rest of /api/v1; times as ISO strings and milliseconds). */
export type SpanJson = {
  trace_id: string;
  span_id: string;
  parent_span_id: string | null;
  service: string;
  name: string;
  kind: "INTERNAL" | "SERVER" | "CLIENT" | "PRODUCER" | "CONSUMER";
  start_time: string;
  /** Milliseconds since the Unix epoch, with fractions. */
  start_ms: number;
  duration_ms: number;
  attributes: Attributes;
  status: { code: "UNSET" | "ERROR"; message?: string };
};

export function spanToJson(span: FinishedSpan): SpanJson {
  return {
    trace_id: span.traceId,
    span_id: span.spanId,
    parent_span_id: span.parentSpanId ?? null,
    service: span.service,
    name: span.name,
    kind: (SpanKind[span.kind] as SpanJson["kind"] | undefined) ?? "INTERNAL",
    start_time: new Date(span.startMs).toISOString(),
    start_ms: span.startMs,
    duration_ms: Math.round((span.endMs - span.startMs) * 1000) / 1000,
    attributes: span.attributes,
    status: span.status.code === SpanStatusCode.ERROR ? { code: "ERROR", ...(span.status.message ? { message: span.status.message } : {}) } : { code: "UNSET" },
  };
}
