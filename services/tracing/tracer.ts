/**
 * Spans, as few as a hop needs: a Tracer starts them, a Span is ended once and handed to a sink. Without
 * an exporter every service gets NOOP_TRACER, whose spans record nothing and only carry the caller's
 * context on (so `traceparent` still reaches the agent); it allocates nothing for a request without one.
 */
import { SAMPLED, newSpanId, newTraceId, type TraceContext } from "./trace-context.js";

/** OTLP's SpanKind values. */
export enum SpanKind {
  INTERNAL = 1,
  SERVER = 2,
  CLIENT = 3,
  PRODUCER = 4,
  CONSUMER = 5,
}

/** OTLP's status codes: UNSET (0) or ERROR (2); OK (1) is for spans that override an error, unused here. */
export enum SpanStatusCode {
  UNSET = 0,
  ERROR = 2,
}

export type Attributes = Record<string, string | number | boolean>;

export interface SpanOptions {
  /** The context this span continues (a client's traceparent, the previous hop's span); none starts a trace. */
  parent?: TraceContext | undefined;
  kind?: SpanKind;
  attributes?: Attributes;
  /** The `service.name` it is reported under, when not its tracer's (the agent's span, reported by the coordinator). */
  service?: string;
}

/** A span as exported: times in milliseconds since the Unix epoch, with fractions. */
export interface FinishedSpan {
  service: string;
  name: string;
  kind: SpanKind;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  traceState?: string;
  flags: number;
  startMs: number;
  endMs: number;
  attributes: Attributes;
  status: { code: SpanStatusCode; message?: string };
}

export interface Span {
  /** What the next hop continues from: this span's own context, or for a non-recording span its parent's. */
  readonly context: TraceContext | undefined;
  readonly recording: boolean;
  setAttribute(key: string, value: string | number | boolean): void;
  /** Marks the span failed (status ERROR) with the error's message. */
  fail(error: unknown): void;
  /** Ends it (once; later calls are ignored) and hands it to the exporter. */
  end(): void;
}

export interface Tracer {
  /** Whether a request without a sampled context is recorded (a trace started here): false on NOOP_TRACER and a sampled-only tracer. */
  readonly recording: boolean;
  /** Whether a span under `parent` (none: a new trace) is recorded: callers skip building attributes when not. */
  records(parent: TraceContext | undefined): boolean;
  startSpan(name: string, options?: SpanOptions): Span;
}

/** Receives every ended span (tracing.ts batches them to an exporter). */
export interface SpanSink {
  add(span: FinishedSpan): void;
}

/** A span that records nothing: the caller's context passes through it unchanged. */
class PassThroughSpan implements Span {
  readonly recording = false;
  constructor(readonly context: TraceContext | undefined) {}
  setAttribute(): void {}
  fail(): void {}
  end(): void {}
}

const EMPTY_SPAN = new PassThroughSpan(undefined);

function passThrough(parent: TraceContext | undefined): Span {
  return parent ? new PassThroughSpan(parent) : EMPTY_SPAN;
}

/** The tracer of a service with no exporter configured. */
export const NOOP_TRACER: Tracer = {
  recording: false,
  records: () => false,
  startSpan: (_name, options) => passThrough(options?.parent),
};

/** Wall-clock milliseconds with sub-millisecond precision (monotonic within the process). */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

class RecordedSpan implements Span {
  readonly recording = true;
  readonly context: TraceContext;
  private readonly data: FinishedSpan;
  private ended = false;

  constructor(
    private readonly sink: SpanSink,
    service: string,
    name: string,
    options: SpanOptions,
  ) {
    const parent = options.parent;
    this.context = { traceId: parent?.traceId ?? newTraceId(), spanId: newSpanId(), flags: parent?.flags ?? SAMPLED };
    if (parent?.traceState) this.context.traceState = parent.traceState;
    const start = nowMs();
    this.data = {
      service: options.service ?? service,
      name,
      kind: options.kind ?? SpanKind.INTERNAL,
      traceId: this.context.traceId,
      spanId: this.context.spanId,
      ...(parent ? { parentSpanId: parent.spanId } : {}),
      ...(parent?.traceState ? { traceState: parent.traceState } : {}),
      flags: this.context.flags,
      startMs: start,
      endMs: start,
      attributes: { ...options.attributes },
      status: { code: SpanStatusCode.UNSET },
    };
  }

  setAttribute(key: string, value: string | number | boolean): void {
    this.data.attributes[key] = value;
  }

  fail(error: unknown): void {
    this.data.status = { code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) };
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.data.endMs = nowMs();
    this.sink.add(this.data);
  }
}

/**
 * A tracer that records spans under `service` (OpenTelemetry's `service.name`). Sampling follows the parent:
 * a context whose sampled flag is off passes through unrecorded; a trace started here is sampled. With
 * `sampledOnly` it starts no trace: only spans under a caller's sampled context are recorded, so traffic
 * without one costs what it costs on NOOP_TRACER.
 */
export class RecordingTracer implements Tracer {
  readonly recording: boolean;
  constructor(
    readonly service: string,
    private readonly sink: SpanSink,
    options: { sampledOnly?: boolean } = {},
  ) {
    this.recording = options.sampledOnly !== true;
  }

  records(parent: TraceContext | undefined): boolean {
    return parent ? (parent.flags & SAMPLED) !== 0 : this.recording;
  }

  startSpan(name: string, options: SpanOptions = {}): Span {
    if (!this.records(options.parent)) return passThrough(options.parent);
    return new RecordedSpan(this.sink, this.service, name, options);
  }
}
