/** A small HTTP/1.1 server for Prometheus scrapes (GET /metrics), for processes whose API port speaks h2c only. */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { ApiKeyAuth, nodeHeaders } from "./api-key-auth.js";
import { METRICS_CONTENT_TYPE, type MetricsRegistry } from "./metrics.js";

export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startMetricsServer(options: { registry: MetricsRegistry; port: number; host: string; bearer: string }): Promise<MetricsServer> {
  const auth = new ApiKeyAuth(options.bearer ? [options.bearer] : []);
  // A scrape is one small GET: a connection that has not sent its headers within 10 s is closed.
  const server = http.createServer({ headersTimeout: 10_000, requestTimeout: 10_000, connectionsCheckingInterval: 1000 }, (req, res) => {
    const reply = (status: number, code: string, message: string) => {
      const body = JSON.stringify({ error: { code, message } });
      res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
      res.end(body);
    };
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.pathname !== "/metrics") return reply(404, "not_found", `no route for ${req.method ?? "GET"} ${url.pathname}; metrics are at GET /metrics`);
    if (req.method !== "GET" && req.method !== "HEAD") return reply(405, "unimplemented", `method ${req.method ?? ""} is not allowed on /metrics`);
    if (!auth.verify(ApiKeyAuth.extract(nodeHeaders(req.headers)))) return reply(401, "unauthenticated", "send the cluster secret as 'Authorization: Bearer <secret>'");
    void options.registry.render().then(
      (text) => {
        res.writeHead(200, { "content-type": METRICS_CONTENT_TYPE, "content-length": Buffer.byteLength(text) });
        res.end(req.method === "HEAD" ? undefined : text);
      },
      () => reply(500, "internal", "metrics could not be collected"),
    );
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
