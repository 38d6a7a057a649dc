/**
 * One TCP port for every protocol: connections that open with the HTTP/2 preface ("PRI * HTTP/2.0")
 * go to an h2c server (gRPC, Connect, gRPC-Web over HTTP/2); everything else goes to an HTTP/1.1
 * server (REST, WebSocket upgrades, Connect and gRPC-Web over HTTP/1.1).
 *
 * Connections that do nothing are closed (docs/configuration.md, "Connection timeouts"): one that
 * sends no byte within `idleTimeoutMs`, an HTTP/1.1 request whose headers take longer than
 * `headersTimeoutMs` (or whose whole request takes longer than `requestTimeoutMs`), and an h2c
 * session that is silent for `idleTimeoutMs` while it has no open stream. Open streams, WebSockets
 * and HTTP/1.1 responses in progress are never cut for being quiet.
 */
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { Duplex } from "node:stream";
import type { NodeHandlerFn } from "./node-http.js";

export type RequestHandler = NodeHandlerFn;

export type UpgradeHandler = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void;

export interface OnePortServerOptions {
  handler: RequestHandler;
  onUpgrade?: UpgradeHandler;
  /** Idle HTTP/1.1 keep-alive timeout, ms. Default 5 s. */
  keepAliveTimeoutMs?: number;
  /** A connection that sends nothing (before its first request; on h2c, while no stream is open) is closed after this, ms. Default 10 s. */
  idleTimeoutMs?: number;
  /** Most time an HTTP/1.1 client may take to send a request's headers, ms. Default 10 s. */
  headersTimeoutMs?: number;
  /** Most time an HTTP/1.1 client may take to send a whole request, body included, ms. Default 300 s. */
  requestTimeoutMs?: number;
  /**
   * Serve HTTP/2 cleartext only (no sniffing): what coordinators need for their internal gRPC API.
   * Sockets then go to nghttp2 untouched, which saves the replay wrapper on every frame.
   */
  http2Only?: boolean;
}

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** `maxSessionMemory` (MB) of an h2c-only (internal) server's sessions. */
const INTERNAL_SESSION_MEMORY_MB = 1024;
export const DEFAULT_IDLE_TIMEOUT_MS = 10_000;
export const DEFAULT_HEADERS_TIMEOUT_MS = 10_000;
export const DEFAULT_REQUEST_TIMEOUT_MS = 300_000;

/** A Duplex over a socket that first yields bytes that were already read from it. */
class ReplaySocket extends Duplex {
  constructor(
    private readonly socket: net.Socket,
    head: Buffer,
  ) {
    super();
    this.push(head);
    socket.on("data", (chunk: Buffer) => {
      if (!this.push(chunk)) socket.pause();
    });
    socket.once("end", () => this.push(null));
    socket.once("close", () => this.destroy());
    socket.on("error", (err) => this.destroy(err));
  }

  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress;
  }

  get remotePort(): number | undefined {
    return this.socket.remotePort;
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.socket.write(chunk, encoding, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.socket.end(callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.socket.destroy(error ?? undefined);
    callback(error);
  }
}

export class OnePortServer {
  private readonly tcp: net.Server;
  private readonly h1: http.Server;
  private readonly h2: http2.Http2Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly sessions = new Set<http2.Http2Session>();
  private readonly http2Only: boolean;
  private readonly idleTimeoutMs: number;

  constructor(options: OnePortServerOptions) {
    this.http2Only = options.http2Only ?? false;
    this.idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.h1 = http.createServer(
      {
        headersTimeout: options.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS,
        requestTimeout: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
        connectionsCheckingInterval: 1000,
      },
      (req, res) => options.handler(req, res),
    );
    this.h1.keepAliveTimeout = options.keepAliveTimeoutMs ?? 5000;
    // Node enforces headersTimeout / requestTimeout (and closeIdleConnections) only for connections of
    // a server that emitted 'listening'; this one never listens (route() hands it the sockets).
    this.h1.emit("listening");
    if (options.onUpgrade) this.h1.on("upgrade", options.onUpgrade);
    // An internal (h2c-only) server carries every stream a gateway proxies on one connection. Node counts the
    // data queued for a stream the peer does not read yet (a gateway holding back a slow client's stream) in
    // the session's memory and refuses new streams (ENHANCE_YOUR_CALM) past `maxSessionMemory`, 10 MB by
    // default: about 20 paused streams of full gRPC batches. Peers here are authenticated gateways.
    this.h2 = http2.createServer(this.http2Only ? { maxSessionMemory: INTERNAL_SESSION_MEMORY_MB } : {}, (req, res) => options.handler(req, res));
    this.h2.on("session", (session) => this.watchSession(session));
    // noDelay: small frames (events, round trips) must not wait for Nagle's algorithm.
    this.tcp = net.createServer({ noDelay: true }, (socket) => this.route(socket));
  }

  /** Tracks the session for close(), and closes it when it is silent with no stream open. */
  private watchSession(session: http2.ServerHttp2Session): void {
    this.sessions.add(session);
    session.once("close", () => this.sessions.delete(session));
    let openStreams = 0;
    const onIdle = () => {
      if (openStreams > 0 || session.closed || session.destroyed) return;
      session.close();
      setTimeout(() => session.destroy(), 1000).unref();
    };
    // The timer restarts on most frames (pings included) and again when the last stream closes; a
    // quiet stream (a live gRPC stream with no events) keeps the session open. (setTimeout's own
    // callback is a once-listener, so the listener is added separately.)
    session.on("timeout", onIdle);
    session.setTimeout(this.idleTimeoutMs);
    session.on("stream", (stream: http2.ServerHttp2Stream) => {
      openStreams++;
      stream.once("close", () => {
        if (--openStreams === 0 && !session.destroyed) session.setTimeout(this.idleTimeoutMs);
      });
    });
  }

  private route(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once("close", () => this.sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    if (this.http2Only) {
      this.h2.emit("connection", socket);
      return;
    }
    // Until the first bytes say which protocol this is, nobody else watches the socket.
    const deadline = setTimeout(() => socket.destroy(), this.idleTimeoutMs).unref();
    socket.once("close", () => clearTimeout(deadline));
    let seen = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      seen = Buffer.concat([seen, chunk]);
      const n = Math.min(seen.length, PREFACE.length);
      const isH2 = seen.subarray(0, n).equals(PREFACE.subarray(0, n));
      if (isH2 && seen.length < PREFACE.length) return; // need more bytes to decide
      socket.off("data", onData);
      clearTimeout(deadline);
      if (isH2) {
        // nghttp2 reads from the socket's native handle, so bytes already read in JS would be lost;
        // hand it a JS stream that replays them first.
        this.h2.emit("connection", new ReplaySocket(socket, seen));
        return;
      }
      socket.pause();
      socket.unshift(seen);
      this.h1.emit("connection", socket);
      socket.resume();
    };
    socket.on("data", onData);
  }

  listen(port: number, host = "127.0.0.1"): Promise<{ port: number; host: string }> {
    return new Promise((resolve, reject) => {
      this.tcp.once("error", reject);
      this.tcp.listen(port, host, () => {
        this.tcp.off("error", reject);
        const address = this.tcp.address() as net.AddressInfo;
        resolve({ port: address.port, host: address.address });
      });
    });
  }

  get port(): number {
    const address = this.tcp.address();
    return address && typeof address === "object" ? address.port : 0;
  }

  /** Stops accepting, ends HTTP/2 sessions gracefully and destroys what is left after `graceMs`. */
  async close(graceMs = 1000): Promise<void> {
    const closed = new Promise<void>((resolve) => this.tcp.close(() => resolve()));
    for (const session of this.sessions) session.close();
    this.h1.closeIdleConnections();
    const timer = setTimeout(() => {
      for (const session of this.sessions) session.destroy();
      for (const socket of this.sockets) socket.destroy();
    }, graceMs);
    timer.unref();
    await closed;
    clearTimeout(timer);
    for (const socket of this.sockets) socket.destroy();
    this.h1.close();
    this.h2.close();
  }
}
