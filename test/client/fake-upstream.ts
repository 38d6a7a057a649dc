/**
 * Test fixtures simulating a (mis)behaving Podium upstream on real sockets: an HTTP server whose
 * handler each test sets, recording every request, optionally accepting WebSocket upgrades; and a
 * port that refuses connections.
 */
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { WebSocketServer, type WebSocket } from "ws";

export interface RecordedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export type Handler = (req: RecordedRequest, res: http.ServerResponse) => void;

export class FakeUpstream {
  readonly requests: RecordedRequest[] = [];
  /** Requests whose client went away before a response was sent. */
  abortedRequests = 0;
  handler: Handler = (_req, res) => json(res, 404, { error: { code: "not_found", message: "no handler" } });
  /** Upgrade requests go here when set; otherwise they are refused with 404. */
  onConnection: ((ws: WebSocket, req: http.IncomingMessage) => void) | undefined;
  /** Set to answer the upgrade with a plain HTTP response instead. */
  rejectUpgrade: { status: number; body: unknown } | undefined;
  readonly upgrades: http.IncomingMessage[] = [];
  private readonly server = http.createServer();
  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly sockets = new Set<Socket>();

  private constructor() {
    this.server.on("connection", (socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
    this.server.on("request", (req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        const recorded = { method: req.method ?? "", url: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks).toString("utf8") };
        this.requests.push(recorded);
        res.on("close", () => {
          if (!res.writableFinished) this.abortedRequests += 1;
        });
        this.handler(recorded, res);
      });
    });
    this.server.on("upgrade", (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
      this.upgrades.push(req);
      const onConnection = this.onConnection;
      if (this.rejectUpgrade || !onConnection) {
        const { status, body } = this.rejectUpgrade ?? { status: 404, body: { error: { code: "not_found", message: "no such instance" } } };
        const text = JSON.stringify(body);
        socket.end(`HTTP/1.1 ${status} Nope\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`);
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, req));
    });
  }

  static async start(): Promise<FakeUpstream> {
    const upstream = new FakeUpstream();
    await new Promise<void>((resolve) => upstream.server.listen(0, "127.0.0.1", resolve));
    return upstream;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  count(method: string, pathPrefix = ""): number {
    return this.requests.filter((r) => r.method === method && r.url.startsWith(pathPrefix)).length;
  }

  async close(): Promise<void> {
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

/** A URL on 127.0.0.1 whose port refuses connections: bound, then closed. */
export async function refusedUrl(): Promise<string> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

/** A sleep that records the requested delays and returns at once (honouring abort). */
export function recordingSleep(): { delays: number[]; sleep: (ms: number, signal?: AbortSignal) => Promise<void> } {
  const delays: number[] = [];
  return {
    delays,
    sleep: async (ms, signal) => {
      delays.push(ms);
      if (signal?.aborted) throw signal.reason;
      await new Promise((resolve) => setImmediate(resolve));
      if (signal?.aborted) throw signal.reason;
    },
  };
}
