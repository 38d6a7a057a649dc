/** A tiny OTLP/HTTP JSON receiver on port 0 for the tracing tests: keeps every exported span with its service. */
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface CollectedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: { key: string; value: { stringValue?: string; intValue?: string } }[];
}

interface ExportRequest {
  resourceSpans: { resource: { attributes: { key: string; value: { stringValue?: string } }[] }; scopeSpans: { spans: Omit<CollectedSpan, "service">[] }[] }[];
}

export class OtlpCollector {
  readonly spans: CollectedSpan[] = [];
  /** Request paths, in order. */
  readonly paths: string[] = [];
  private constructor(private readonly server: http.Server) {}

  static async start(): Promise<OtlpCollector> {
    const server = http.createServer();
    const collector = new OtlpCollector(server);
    server.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        collector.paths.push(req.url ?? "");
        const body = JSON.parse(Buffer.concat(chunks).toString()) as ExportRequest;
        for (const rs of body.resourceSpans) {
          const service = rs.resource.attributes.find((a) => a.key === "service.name")?.value.stringValue ?? "";
          for (const ss of rs.scopeSpans) for (const span of ss.spans) collector.spans.push({ ...span, service });
        }
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return collector;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Waits (exports come about once a second) until `done` holds for the spans of `traceId`; returns them. */
  async waitFor(traceId: string, done: (spans: CollectedSpan[]) => boolean, timeoutMs = 30_000): Promise<CollectedSpan[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const spans = this.spans.filter((s) => s.traceId === traceId);
      if (done(spans) || Date.now() > deadline) return spans;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
