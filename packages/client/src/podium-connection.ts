/**
 * A live WebSocket to one instance's event stream: `ws(s)://{url}/api/v1/instances/{id}/connect`.
 * Inbound text frames are Podium events `{"messageType","content","agentId","instanceId","seq","timestamp"}`.
 * The gateway's own error frames `{"type":"error","error":{code,message}}` (e.g. a message it refused)
 * become an event `{messageType:"error", content:{message, code}}`, so the consumer sees them in order.
 * Other frames (bad JSON, no messageType, binary) are dropped. Outbound: `sendMessage` writes the
 * process_message envelope, `sendRaw` any string.
 *
 * The event stream ends when the socket closes normally (1000, 1001, 1005) or on `close()`; an
 * abnormal close ends it with a PodiumConnectionError (kind "closed").
 */
import WebSocket from "ws";
import type { RawData } from "ws";
import { EventQueue } from "./event-queue.js";
import { PodiumConnectionError, abortedError } from "./podium-connection-error.js";

export interface PodiumEvent {
  messageType: string;
  content?: Record<string, unknown>;
  agentId?: string;
  /** The update's seq (per agent, increasing). */
  seq?: number;
  /** RFC 3339. */
  timestamp?: string;
}

export interface PodiumConnection extends AsyncDisposable {
  readonly instanceId: string;
  /** Sends `{"type":"process_message","content":{"text":content,...metadata}}`. */
  sendMessage(content: string, metadata?: Record<string, unknown>): Promise<void>;
  /** Sends one text frame as is. */
  sendRaw(data: string): Promise<void>;
  /** The instance's events; iterate once. */
  readonly events: AsyncIterable<PodiumEvent>;
  /** Closes the socket (code 1000) and ends `events`. Idempotent. */
  close(): Promise<void>;
}

const NORMAL_CLOSE_CODES = new Set([1000, 1001, 1005]);
const CLOSE_WAIT_MS = 2000;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Validates one inbound frame; undefined when it is not a Podium event. */
export function parsePodiumEvent(text: string): PodiumEvent | undefined {
  let frame: unknown;
  try {
    frame = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isRecord(frame)) return undefined;
  if (frame.type === "error" && isRecord(frame.error) && frame.messageType === undefined) {
    const content: Record<string, unknown> = { message: typeof frame.error.message === "string" ? frame.error.message : "gateway error" };
    if (typeof frame.error.code === "string") content.code = frame.error.code;
    return { messageType: "error", content };
  }
  if (typeof frame.messageType !== "string" || frame.messageType.length === 0) return undefined;
  const event: PodiumEvent = { messageType: frame.messageType };
  if (isRecord(frame.content)) event.content = frame.content;
  if (typeof frame.agentId === "string" && frame.agentId) event.agentId = frame.agentId;
  const seq = typeof frame.seq === "string" && /^\d+$/.test(frame.seq) ? Number(frame.seq) : frame.seq;
  if (typeof seq === "number" && Number.isSafeInteger(seq) && seq >= 0) event.seq = seq;
  const ts = frame.timestamp;
  if (typeof ts === "string" && !Number.isNaN(Date.parse(ts))) event.timestamp = ts;
  else if (typeof ts === "number" && Number.isFinite(ts)) event.timestamp = new Date(ts).toISOString();
  return event;
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString("utf8");
  return data.toString("utf8");
}

export interface OpenConnectionOptions {
  instanceId: string;
  /** ws(s)://.../connect */
  url: string;
  apiKey: string | undefined;
  handshakeTimeoutMs: number;
  /** Aborts the handshake; once connected, aborting closes the connection. */
  signal?: AbortSignal | undefined;
  /** Called once the connection has closed (for the client's bookkeeping). */
  onClosed?: () => void;
}

class WsPodiumConnection implements PodiumConnection {
  readonly instanceId: string;
  readonly events: EventQueue<PodiumEvent>;
  private readonly closed: Promise<void>;
  private readonly detachAbort: () => void;

  constructor(
    private readonly ws: WebSocket,
    options: OpenConnectionOptions,
  ) {
    this.instanceId = options.instanceId;
    this.events = new EventQueue<PodiumEvent>({ pause: () => ws.pause(), resume: () => ws.resume() });
    ws.on("message", (data, isBinary) => {
      if (isBinary) return;
      const event = parsePodiumEvent(rawText(data));
      if (event) this.events.push(event);
    });
    this.closed = new Promise((resolve) => {
      ws.once("close", (code: number, reason: Buffer) => {
        if (NORMAL_CLOSE_CODES.has(code)) this.events.end();
        else {
          const why = reason.length > 0 ? `: ${reason.toString("utf8")}` : "";
          this.events.end(new PodiumConnectionError(`connection to instance ${this.instanceId} closed abnormally (${code}${why})`, { kind: "closed" }));
        }
        this.detachAbort();
        options.onClosed?.();
        resolve();
      });
    });
    const signal = options.signal;
    const onAbort = () => void this.close();
    signal?.addEventListener("abort", onAbort, { once: true });
    this.detachAbort = () => signal?.removeEventListener("abort", onAbort);
  }

  sendMessage(content: string, metadata?: Record<string, unknown>): Promise<void> {
    return this.sendRaw(JSON.stringify({ type: "process_message", content: { text: content, ...metadata } }));
  }

  sendRaw(data: string): Promise<void> {
    if (this.ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new PodiumConnectionError(`connection to instance ${this.instanceId} is not open`, { kind: "closed" }));
    }
    return new Promise((resolve, reject) => {
      this.ws.send(data, (error) => {
        if (error) reject(new PodiumConnectionError(`sending to instance ${this.instanceId} failed: ${error.message}`, { kind: "closed", cause: error }));
        else resolve();
      });
    });
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000);
    if (this.ws.readyState !== WebSocket.CLOSED) {
      const timer = setTimeout(() => this.ws.terminate(), CLOSE_WAIT_MS);
      await this.closed;
      clearTimeout(timer);
    }
    this.events.end();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Opens the socket; resolves once the handshake succeeds. */
export function openConnection(options: OpenConnectionOptions): Promise<PodiumConnection> {
  const { signal, instanceId } = options;
  const what = `connect(${instanceId})`;
  if (signal?.aborted) return Promise.reject(abortedError(signal, what));
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (options.apiKey) headers.authorization = `Bearer ${options.apiKey}`;
    const ws = new WebSocket(options.url, { headers, handshakeTimeout: options.handshakeTimeoutMs });
    let settled = false;
    const fail = (error: PodiumConnectionError) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener("abort", onAbort);
      ws.terminate();
      reject(error);
    };
    const onAbort = () => fail(abortedError(signal as AbortSignal, what));
    signal?.addEventListener("abort", onAbort, { once: true });
    // Always keep an error listener: ws emits 'error' on terminate() during the handshake.
    ws.on("error", (error: Error) => {
      const timedOut = /timed out/i.test(error.message);
      fail(new PodiumConnectionError(`${what}: ${error.message}`, { kind: timedOut ? "timeout" : "network", cause: error }));
    });
    ws.once("unexpected-response", (_request, response) => {
      const chunks: Buffer[] = [];
      let size = 0;
      response.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size <= 64 * 1024) chunks.push(chunk);
      });
      const done = () => {
        let code: string | undefined;
        let message: string | undefined;
        try {
          const body: unknown = JSON.parse(Buffer.concat(chunks).toString("utf8"));
          if (isRecord(body) && isRecord(body.error)) {
            if (typeof body.error.code === "string") code = body.error.code;
            if (typeof body.error.message === "string") message = body.error.message;
          }
        } catch {
          // not JSON: status only
        }
        const status = response.statusCode ?? 0;
        fail(
          new PodiumConnectionError(`${what} failed with HTTP ${status}${message ? `: ${message}` : ""}`, {
            kind: "http",
            status,
            ...(code !== undefined ? { code } : {}),
          }),
        );
      };
      response.once("end", done);
      response.once("error", done);
    });
    ws.once("open", () => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener("abort", onAbort);
      resolve(new WsPodiumConnection(ws, options));
    });
  });
}
