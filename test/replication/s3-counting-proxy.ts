/**
 * An HTTP proxy in front of a test S3 endpoint that counts the requests passing through it, by
 * operation (PUT, GET, HEAD, DELETE, LIST = a GET on the bucket with a list query, POST). Point
 * Litestream at `endpoint` to measure what replication costs in S3 requests.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";

export type S3Operation = "PUT" | "GET" | "HEAD" | "DELETE" | "LIST" | "POST" | "OTHER";

export interface S3RequestLog {
  at: number;
  operation: S3Operation;
  path: string;
}

export interface S3CountingProxy {
  endpoint: string;
  /** Every request seen since start (or the last reset), oldest first. */
  readonly requests: readonly S3RequestLog[];
  count(filter?: { operation?: S3Operation; pathIncludes?: string; since?: number }): number;
  reset(): void;
  close(): Promise<void>;
}

function operationOf(method: string | undefined, url: string): S3Operation {
  const [pathname = "", query = ""] = url.split("?");
  const isBucket = pathname.split("/").filter(Boolean).length <= 1;
  if (method === "GET" && isBucket && /(^|&)(list-type|prefix|delimiter)=/.test(query)) return "LIST";
  if (method === "GET" || method === "PUT" || method === "HEAD" || method === "DELETE" || method === "POST") return method;
  return "OTHER";
}

export async function startS3CountingProxy(target: string): Promise<S3CountingProxy> {
  const upstream = new URL(target);
  let requests: S3RequestLog[] = [];
  const server = http.createServer((req, res) => {
    const url = req.url ?? "/";
    requests.push({ at: Date.now(), operation: operationOf(req.method, url), path: decodeURIComponent(url) });
    const forward = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    forward.on("error", () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.on("aborted", () => forward.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    get requests() {
      return requests;
    },
    count(filter = {}) {
      return requests.filter(
        (r) => (!filter.operation || r.operation === filter.operation) && (!filter.pathIncludes || r.path.includes(filter.pathIncludes)) && (filter.since === undefined || r.at >= filter.since),
      ).length;
    },
    reset() {
      requests = [];
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
