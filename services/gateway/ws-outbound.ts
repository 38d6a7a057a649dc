/**
 * What the gateway sends one WebSocket client, bounded. The bridges pull the next batch of updates
 * from the coordinator only when `ready()` says the client has read what it was sent (its
 * `bufferedAmount` is under `highWaterBytes`), so a slow reader pushes back on the coordinator stream
 * instead of piling events up in the gateway. A client that stays above the mark for `stallMs`, or
 * lets more than `maxBufferedBytes` pile up, is closed with 4008 (`WS_CLOSE_TOO_SLOW`): nothing is
 * lost, it reconnects with `after_seq` (the seq of the last event it got) and reads the rest from the
 * agent's log. What the last write added does not count as piled up: one update may be larger than
 * `maxBufferedBytes` (a 10 MiB state.delta), and no client could read it before it was written.
 * Gateway memory per connection stays under `maxBufferedBytes` plus one write.
 */
import type { WebSocket } from "ws";
import { encodeTextFrames } from "./ws-frames.js";

/** The part of a `ws` WebSocket this uses. */
export type OutboundSocket = Pick<WebSocket, "readyState" | "OPEN" | "bufferedAmount" | "send" | "close" | "extensions">;

/** The connection under the WebSocket (what `ws` writes its frames to). */
export type RawSocket = { write(data: Buffer): boolean };

/** Close code: the client did not read fast enough; reconnect with `after_seq` (docs/api.md). */
export const WS_CLOSE_TOO_SLOW = 4008;
export const WS_CLOSE_TOO_SLOW_REASON = "too slow: reconnect with after_seq";

export interface WsOutboundOptions {
  /** Above this many unsent bytes no more updates are pulled. Default 1 MiB. */
  highWaterBytes?: number;
  /** More unsent bytes than this closes the socket at once. Default 4 MiB. */
  maxBufferedBytes?: number;
  /** How long a client may stay above the high-water mark before it is closed. Default 10 s. */
  stallMs?: number;
  /** Called when a client is closed for being too slow (metrics). */
  onTooSlow?: () => void;
}

export const DEFAULT_WS_OUTBOUND: Required<Omit<WsOutboundOptions, "onTooSlow">> = {
  highWaterBytes: 1024 * 1024,
  maxBufferedBytes: 4 * 1024 * 1024,
  stallMs: 10_000,
};

export class WsOutbound {
  private readonly highWaterBytes: number;
  private readonly maxBufferedBytes: number;
  private readonly stallMs: number;
  private closedTooSlow = false;
  /** What the last write added to `bufferedAmount` (not yet the client's to read when it is measured). */
  private lastWrite = 0;
  /** Where sendAll writes its frames itself: the socket under `ws`, when no extension changes what a frame is. */
  private readonly raw: RawSocket | undefined;

  constructor(
    private readonly ws: OutboundSocket,
    private readonly options: WsOutboundOptions = {},
    raw?: RawSocket,
  ) {
    this.raw = raw && ws.extensions === "" ? raw : undefined;
    this.highWaterBytes = options.highWaterBytes ?? DEFAULT_WS_OUTBOUND.highWaterBytes;
    this.maxBufferedBytes = Math.max(this.highWaterBytes, options.maxBufferedBytes ?? DEFAULT_WS_OUTBOUND.maxBufferedBytes);
    this.stallMs = options.stallMs ?? DEFAULT_WS_OUTBOUND.stallMs;
  }

  /** True once the socket was closed with 4008. */
  get tooSlow(): boolean {
    return this.closedTooSlow;
  }

  /**
   * Resolves true when more may be sent, after waiting for the client to read while it is above the
   * high-water mark; false when the socket is not open any more or the client was too slow (then it
   * is being closed with 4008).
   */
  async ready(): Promise<boolean> {
    const started = Date.now();
    for (let pollMs = 5; ; pollMs = Math.min(200, pollMs * 2)) {
      if (this.ws.readyState !== this.ws.OPEN) return false;
      const buffered = this.ws.bufferedAmount;
      if (buffered - this.lastWrite > this.maxBufferedBytes) return this.closeTooSlow();
      if (buffered < this.highWaterBytes) return true;
      const left = this.stallMs - (Date.now() - started);
      if (left <= 0) return this.closeTooSlow();
      await new Promise((resolve) => setTimeout(resolve, Math.min(pollMs, left)));
    }
  }

  /** Sends one frame (while the socket is open). */
  send(frame: string): void {
    if (this.ws.readyState === this.ws.OPEN) this.measured(() => this.ws.send(frame));
  }

  /**
   * Sends frames in order (while the socket is open): as one write of frames encoded here when the socket
   * under the WebSocket was given, else one `ws` send each. The caller bounds a call's bytes (checkpoint after).
   */
  sendAll(frames: readonly string[]): void {
    if (this.ws.readyState !== this.ws.OPEN || frames.length === 0) return;
    const raw = this.raw;
    this.measured(() => {
      if (raw) raw.write(encodeTextFrames(frames));
      else for (const frame of frames) this.ws.send(frame);
    });
  }

  /**
   * Call between updates (never between the frames of one update, so the client always has whole
   * updates and can resume after the last one): false when the socket is not open any more, or when
   * the client let more than `maxBufferedBytes` pile up before the last write (then it is being closed with 4008).
   * Over the high-water mark, wait for `ready()` before the next write.
   */
  checkpoint(): boolean {
    if (this.ws.readyState !== this.ws.OPEN) return false;
    return this.ws.bufferedAmount - this.lastWrite > this.maxBufferedBytes ? this.closeTooSlow() : true;
  }

  /** True while the client has more than `highWaterBytes` unread. */
  get behind(): boolean {
    return this.ws.bufferedAmount >= this.highWaterBytes;
  }

  /**
   * Between updates: checkpoint(), then, while the client is behind (a large update was just written), the wait
   * for it to read before anything more is written. `true` at once when it is not behind (no promise on the hot
   * path); false (or a promise of false) when the socket is done.
   */
  next(): boolean | Promise<boolean> {
    if (!this.checkpoint()) return false;
    return this.behind ? this.ready() : true;
  }

  private measured(write: () => void): void {
    const before = this.ws.bufferedAmount;
    write();
    this.lastWrite = Math.max(0, this.ws.bufferedAmount - before);
  }

  private closeTooSlow(): false {
    if (!this.closedTooSlow && this.ws.readyState === this.ws.OPEN) {
      this.closedTooSlow = true;
      this.options.onTooSlow?.();
      this.ws.close(WS_CLOSE_TOO_SLOW, WS_CLOSE_TOO_SLOW_REASON);
    }
    return false;
  }
}
