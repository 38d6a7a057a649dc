/**
 * Where a process's spans go: ended spans are queued and handed to an exporter in batches (every
 * `intervalMs`, or at once when `maxBatch` are waiting), never on the request's path. A queue past
 * `maxQueued` drops new spans and counts them rather than grow without bound behind a slow collector.
 */
import { RecordingTracer, type FinishedSpan, type SpanSink, type Tracer } from "./tracer.js";

export interface SpanExporter {
  /** Sends one batch; a rejection is reported through `onError` and the batch is dropped. */
  export(spans: FinishedSpan[]): Promise<void>;
}

export interface TracingOptions {
  exporter: SpanExporter;
  /** Default 1000 ms. */
  intervalMs?: number;
  /** Default 512 spans per export. */
  maxBatch?: number;
  /** Default 8192 spans waiting. */
  maxQueued?: number;
  /** A failed export (it is not retried). */
  onError?: (err: unknown) => void;
}

export class Tracing implements SpanSink {
  /** Spans dropped because the queue was full. */
  dropped = 0;
  private queue: FinishedSpan[] = [];
  private readonly exporter: SpanExporter;
  private readonly intervalMs: number;
  private readonly maxBatch: number;
  private readonly maxQueued: number;
  private readonly onError: (err: unknown) => void;
  private timer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private closed = false;

  constructor(options: TracingOptions) {
    this.exporter = options.exporter;
    this.intervalMs = options.intervalMs ?? 1000;
    this.maxBatch = options.maxBatch ?? 512;
    this.maxQueued = options.maxQueued ?? 8192;
    this.onError = options.onError ?? (() => undefined);
  }

  /** A tracer whose spans are reported under `service` (service.name), e.g. "podium-gateway". */
  tracer(service: string): Tracer {
    return new RecordingTracer(service, this);
  }

  add(span: FinishedSpan): void {
    if (this.closed) return;
    if (this.queue.length >= this.maxQueued) {
      this.dropped++;
      return;
    }
    this.queue.push(span);
    if (this.queue.length >= this.maxBatch) this.exportQueued();
    else this.timer ??= setTimeout(() => this.exportQueued(), this.intervalMs).unref();
  }

  /** Exports everything queued and waits for every export under way. */
  async flush(): Promise<void> {
    this.exportQueued();
    await Promise.all([...this.inFlight]);
  }

  /** Flushes, then records nothing more. */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
  }

  private exportQueued(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      const sent: Promise<void> = this.exporter
        .export(batch)
        .catch((err: unknown) => this.onError(err))
        .finally(() => this.inFlight.delete(sent));
      this.inFlight.add(sent);
    }
  }
}

/** Keeps every exported span in memory (tests, and a process that wants to look at its own spans). */
export class MemorySpanExporter implements SpanExporter {
  readonly spans: FinishedSpan[] = [];
  export(spans: FinishedSpan[]): Promise<void> {
    this.spans.push(...spans);
    return Promise.resolve();
  }
}
