/**
 * An HTTP proxy in front of a real Podium for fault injection: it records every request, and per
 * request either forwards it, answers with a status, drops the connection (as a dead server would),
 * or stalls (never answers). `close()` ends everything it holds.
 */
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";

export type Fault = "pass" | "drop" | "stall" | { status: number };

export interface SeenRequest {
  method: string;
  url: string;
  /** ms since the proxy started (performance.now based). */
  at: number;
}

export class FaultProxy {
  readonly requests: SeenRequest[] = [];
  /** Decides what happens to each request (default: forward). */
  fault: (req: SeenRequest) => Fault = () => "pass";
  private readonly server: http.Server;
  private readonly sockets = new Set<Socket>();
  private readonly started = performance.now();

  private constructor(private readonly target: URL) {
    this.server = http.createServer((req, res) => this.handle(req, res));
    this.server.on("connection", (socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
  }

  static async start(target: string): Promise<FaultProxy> {
    const proxy = new FaultProxy(new URL(target));
    await new Promise<void>((resolve) => proxy.server.listen(0, "127.0.0.1", resolve));
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  count(method: string, path: string): number {
    return this.requests.filter((r) => r.method === method && r.url.split("?")[0] === path).length;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const seen: SeenRequest = { method: req.method ?? "", url: req.url ?? "", at: performance.now() - this.started };
    this.requests.push(seen);
    const fault = this.fault(seen);
    if (fault === "drop") {
      req.socket.destroy();
      return;
    }
    if (fault === "stall") return;
    if (typeof fault === "object") {
      const body = JSON.stringify({ error: { code: "unavailable", message: "injected fault" } });
      res.writeHead(fault.status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) }).end(body);
      return;
    }
    const upstream = http.request({ host: this.target.hostname, port: this.target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on("error", () => req.socket.destroy());
    req.pipe(upstream);
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A URL on 127.0.0.1 where nothing listens (a port that refuses connections). */
export async function refusedUrl(): Promise<string> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}
