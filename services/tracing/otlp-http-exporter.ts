/**
 * OTLP/HTTP with the JSON encoding (https://opentelemetry.io/docs/specs/otlp/#otlphttp): a POST of an
 * ExportTraceServiceRequest to `<endpoint>/v1/traces`, spans grouped by their service (one resource each).
 * Ids are hex, kinds and status codes numbers, times nanosecond strings, as the spec's JSON mapping says.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { PODIUM_VERSION } from "../shared/version.js";
import type { Attributes, FinishedSpan } from "./tracer.js";
import type { SpanExporter } from "./tracing.js";

export interface OtlpHttpExporterOptions {
  /** The collector's base URL (`/v1/traces` is appended unless it is there already), e.g. http://127.0.0.1:4318. */
  endpoint: string;
  /** Extra request headers (e.g. an API key of a hosted collector). */
  headers?: Record<string, string>;
  /** Default 10 s. */
  timeoutMs?: number;
}

type AnyValue = { stringValue: string } | { intValue: string } | { doubleValue: number } | { boolValue: boolean };

/** The traces URL of an OTLP/HTTP endpoint; InvalidArgument for anything but an http(s) URL. */
export function otlpTracesUrl(endpoint: string): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new ConnectError(`OTLP endpoint ${JSON.stringify(endpoint)} is not a URL`, Code.InvalidArgument);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new ConnectError(`OTLP endpoint must be http(s), got ${url.protocol}`, Code.InvalidArgument);
  if (!url.pathname.endsWith("/v1/traces")) url.pathname = `${url.pathname.replace(/\/+$/, "")}/v1/traces`;
  return url.toString();
}

function anyValue(value: string | number | boolean): AnyValue {
  if (typeof value === "string") return { stringValue: value };
  if (typeof value === "boolean") return { boolValue: value };
  return Number.isInteger(value) ? { intValue: String(value) } : { doubleValue: value };
}

function keyValues(attributes: Attributes): { key: string; value: AnyValue }[] {
  return Object.entries(attributes).map(([key, value]) => ({ key, value: anyValue(value) }));
}

/** Milliseconds with fractions as integer nanoseconds, in a string (int64 in proto3 JSON). */
function nanos(ms: number): string {
  const whole = Math.floor(ms);
  return `${BigInt(whole) * 1_000_000n + BigInt(Math.round((ms - whole) * 1e6))}`;
}

/** The ExportTraceServiceRequest of a batch, as JSON. */
export function otlpTraceRequest(spans: readonly FinishedSpan[]): object {
  const byService = new Map<string, FinishedSpan[]>();
  for (const span of spans) {
    const list = byService.get(span.service);
    if (list) list.push(span);
    else byService.set(span.service, [span]);
  }
  return {
    resourceSpans: [...byService].map(([service, list]) => ({
      resource: { attributes: keyValues({ "service.name": service, "service.version": PODIUM_VERSION, "telemetry.sdk.name": "podium" }) },
      scopeSpans: [
        {
          scope: { name: "podium", version: PODIUM_VERSION },
          spans: list.map((span) => ({
            traceId: span.traceId,
            spanId: span.spanId,
            ...(span.parentSpanId ? { parentSpanId: span.parentSpanId } : {}),
            ...(span.traceState ? { traceState: span.traceState } : {}),
            name: span.name,
            kind: span.kind,
            startTimeUnixNano: nanos(span.startMs),
            endTimeUnixNano: nanos(span.endMs),
            attributes: keyValues(span.attributes),
            status: span.status.message === undefined ? { code: span.status.code } : { code: span.status.code, message: span.status.message },
          })),
        },
      ],
    })),
  };
}

export class OtlpHttpExporter implements SpanExporter {
  readonly url: string;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;

  constructor(options: OtlpHttpExporterOptions) {
    this.url = otlpTracesUrl(options.endpoint);
    this.headers = { ...options.headers, "content-type": "application/json" };
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  async export(spans: FinishedSpan[]): Promise<void> {
    let res: Response;
    try {
      res = await fetch(this.url, { method: "POST", headers: this.headers, body: JSON.stringify(otlpTraceRequest(spans)), signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (err) {
      throw new ConnectError(`OTLP export of ${spans.length} spans to ${this.url} failed`, Code.Unavailable, undefined, undefined, err);
    }
    await res.arrayBuffer().catch(() => undefined); // frees the connection for the next batch
    if (!res.ok) throw new ConnectError(`OTLP export of ${spans.length} spans to ${this.url}: HTTP ${res.status}`, res.status >= 500 || res.status === 429 ? Code.Unavailable : Code.InvalidArgument);
  }
}
