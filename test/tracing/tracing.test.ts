/** The tracing core: W3C trace context, spans and their batching, and the OTLP/HTTP JSON exporter against a real HTTP server. */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "@jest/globals";
import { formatTraceparent, parseTraceparent, traceHeaders } from "../../services/tracing/trace-context.js";
import { NOOP_TRACER, SpanKind, SpanStatusCode } from "../../services/tracing/tracer.js";
import { MemorySpanExporter, Tracing } from "../../services/tracing/tracing.js";
import { OtlpHttpExporter, otlpTracesUrl } from "../../services/tracing/otlp-http-exporter.js";
import { tracingFromFlags } from "../../services/tracing/tracing-config.js";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT = `00-${TRACE}-00f067aa0ba902b7-01`;

describe("W3C traceparent", () => {
  it("parses a valid header with its tracestate and formats it back", () => {
    const context = parseTraceparent(PARENT, " congo=t61rcWkgMzE ");
    expect(context).toEqual({ traceId: TRACE, spanId: "00f067aa0ba902b7", flags: 1, traceState: "congo=t61rcWkgMzE" });
    expect(formatTraceparent(context!)).toBe(PARENT);
    expect(traceHeaders(context!)).toEqual({ traceparent: PARENT, tracestate: "congo=t61rcWkgMzE" });
  });

  it("ignores what the spec says to ignore: bad shape, zero ids, version ff, extra fields on version 00", () => {
    for (const bad of [
      undefined,
      null,
      "",
      "garbage",
      PARENT.toUpperCase(),
      `00-${"0".repeat(32)}-00f067aa0ba902b7-01`,
      `00-${TRACE}-${"0".repeat(16)}-01`,
      `ff-${TRACE}-00f067aa0ba902b7-01`,
      `${PARENT}-extra`,
    ]) {
      expect(parseTraceparent(bad)).toBeUndefined();
    }
    // A later version may append fields.
    expect(parseTraceparent(`01-${TRACE}-00f067aa0ba902b7-00-whatever`)).toEqual({ traceId: TRACE, spanId: "00f067aa0ba902b7", flags: 0 });
  });
});

describe("spans", () => {
  it("without an exporter, pass the caller's context through and record nothing", () => {
    const parent = parseTraceparent(PARENT);
    expect(NOOP_TRACER.startSpan("x", { parent }).context).toBe(parent);
    expect(NOOP_TRACER.startSpan("x").context).toBeUndefined();
    expect(NOOP_TRACER.recording).toBe(false);
  });

  it("are children of their parent, sampled by it, and batched to the exporter", async () => {
    const exporter = new MemorySpanExporter();
    const tracing = new Tracing({ exporter, intervalMs: 60_000 });
    const tracer = tracing.tracer("svc");
    const root = tracer.startSpan("root", { kind: SpanKind.SERVER, parent: parseTraceparent(PARENT, "a=b"), attributes: { "rpc.method": "M" } });
    const child = tracer.startSpan("child", { parent: root.context, service: "other" });
    child.fail(new Error("boom"));
    child.end();
    root.end();
    root.end(); // once only
    expect(tracer.startSpan("unsampled", { parent: parseTraceparent(`00-${TRACE}-00f067aa0ba902b7-00`) }).recording).toBe(false);
    expect(exporter.spans).toHaveLength(0); // not on the caller's path
    await tracing.close();
    const [c, r] = exporter.spans;
    expect(r).toMatchObject({ service: "svc", name: "root", kind: SpanKind.SERVER, traceId: TRACE, parentSpanId: "00f067aa0ba902b7", traceState: "a=b", attributes: { "rpc.method": "M" } });
    expect(c).toMatchObject({ service: "other", traceId: TRACE, parentSpanId: r!.spanId, status: { code: SpanStatusCode.ERROR, message: "boom" } });
    expect(r!.endMs).toBeGreaterThanOrEqual(r!.startMs);
    expect(exporter.spans).toHaveLength(2);
  });

  it("drop what does not fit in the queue instead of growing", async () => {
    const exporter = new MemorySpanExporter();
    const tracing = new Tracing({ exporter, maxQueued: 3, maxBatch: 100, intervalMs: 60_000 });
    const tracer = tracing.tracer("svc");
    for (let i = 0; i < 5; i++) tracer.startSpan(`s${i}`).end();
    await tracing.close();
    expect(exporter.spans.map((s) => s.name)).toEqual(["s0", "s1", "s2"]);
    expect(tracing.dropped).toBe(2);
  });
});

describe("OTLP/HTTP JSON exporter", () => {
  let server: http.Server | undefined;
  afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

  it("builds the traces URL and refuses what is not http(s)", () => {
    expect(otlpTracesUrl("http://127.0.0.1:4318")).toBe("http://127.0.0.1:4318/v1/traces");
    expect(otlpTracesUrl("http://collector/otlp/")).toBe("http://collector/otlp/v1/traces");
    expect(otlpTracesUrl("https://c.example/v1/traces")).toBe("https://c.example/v1/traces");
    expect(() => otlpTracesUrl("ftp://x")).toThrow(/http\(s\)/);
    expect(() => otlpTracesUrl("not a url")).toThrow(/not a URL/);
  });

  it("POSTs ExportTraceServiceRequest JSON to a real endpoint, one resource per service, and reports failures", async () => {
    const bodies: { url: string; type: string; body: unknown }[] = [];
    let status = 200;
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        bodies.push({ url: req.url ?? "", type: req.headers["content-type"] ?? "", body: JSON.parse(Buffer.concat(chunks).toString()) });
        res.writeHead(status, { "content-type": "application/json" }).end("{}");
      });
    });
    await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
    const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const errors: string[] = [];
    const tracing = await tracingFromFlags({ "otlp-endpoint": endpoint }, {}, (line) => errors.push(line));
    expect(tracing).toBeDefined();
    const gateway = tracing!.tracer("podium-gateway");
    const root = gateway.startSpan("POST /api/v1/instances/{id}/messages", { kind: SpanKind.SERVER, attributes: { "http.response.status_code": 202, ratio: 0.5, ok: true } });
    tracing!.tracer("podium-coordinator").startSpan("turn", { parent: root.context }).end();
    root.end();
    await tracing!.flush();
    expect(bodies).toHaveLength(1);
    expect(bodies[0]).toMatchObject({ url: "/v1/traces", type: "application/json" });
    const request = bodies[0]!.body as { resourceSpans: { resource: { attributes: { key: string; value: { stringValue?: string } }[] }; scopeSpans: { spans: Record<string, unknown>[] }[] }[] };
    const services = request.resourceSpans.map((r) => r.resource.attributes.find((a) => a.key === "service.name")?.value.stringValue);
    expect(services.sort()).toEqual(["podium-coordinator", "podium-gateway"]);
    const spans = request.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans));
    const server_ = spans.find((s) => s.kind === SpanKind.SERVER)!;
    expect(server_).toMatchObject({ traceId: root.context!.traceId, spanId: root.context!.spanId, name: "POST /api/v1/instances/{id}/messages", status: { code: 0 } });
    expect(server_.attributes).toEqual([
      { key: "http.response.status_code", value: { intValue: "202" } },
      { key: "ratio", value: { doubleValue: 0.5 } },
      { key: "ok", value: { boolValue: true } },
    ]);
    expect(BigInt(server_.endTimeUnixNano as string)).toBeGreaterThanOrEqual(BigInt(server_.startTimeUnixNano as string));
    expect(spans.find((s) => s.kind === SpanKind.INTERNAL)).toMatchObject({ parentSpanId: root.context!.spanId });
    status = 503;
    gateway.startSpan("lost").end();
    await tracing!.close();
    expect(errors.join("\n")).toMatch(/HTTP 503 \(1 failed exports\)/);
  });

  it("loads nothing without an endpoint", async () => {
    expect(await tracingFromFlags({}, {}, () => undefined)).toBeUndefined();
    await expect(new OtlpHttpExporter({ endpoint: "http://127.0.0.1:1" }).export([])).rejects.toThrow(/failed/);
  });
});

describe("SpanBuffer and the sampled-only tracer (no exporter)", () => {
  it("records only spans under a sampled context, and keeps the last `capacity` spans", async () => {
    const { SpanBuffer, spanTracer } = await import("../../services/tracing/span-buffer.js");
    const { parseTraceparent: parse } = await import("../../services/tracing/trace-context.js");
    const buffer = new SpanBuffer(3);
    const tracer = spanTracer("svc", buffer);
    expect(tracer.recording).toBe(false);
    expect(tracer.startSpan("no context").recording).toBe(false);
    const trace = "0af7651916cd43dd8448eb211c80319c";
    expect(tracer.startSpan("unsampled", { parent: parse(`00-${trace}-00f067aa0ba902b7-00`) }).recording).toBe(false);
    for (let i = 0; i < 4; i++) tracer.startSpan(`sampled ${i}`, { parent: parse(`00-${trace}-00f067aa0ba902b7-01`) }).end();
    expect(buffer.trace(trace).map((s) => s.name)).toEqual(["sampled 1", "sampled 2", "sampled 3"]);
    expect(buffer.trace("4bf92f3577b34da6a3ce929d0e0e4736")).toEqual([]);
  });
});
