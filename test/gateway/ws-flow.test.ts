/**
 * The two halves of a bridged WebSocket: inbound frames handled one at a time in order (OrderedFrames),
 * outbound updates bounded by what the client has read (WsOutbound). Fakes for the sockets.
 */
import { describe, it, expect } from "@jest/globals";
import { OrderedFrames } from "../../services/gateway/ordered-frames.js";
import { WS_CLOSE_TOO_SLOW, WsOutbound, type OutboundSocket } from "../../services/gateway/ws-outbound.js";

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe("OrderedFrames", () => {
  it("runs frames one at a time in arrival order whatever each takes, and pauses the socket while too many wait", async () => {
    const calls: string[] = [];
    const frames = new OrderedFrames({ pause: () => calls.push("pause"), resume: () => calls.push("resume") }, 4);
    const done: number[] = [];
    let running = 0;
    let overlapped = false;
    for (let i = 0; i < 10; i++) {
      frames.push(async () => {
        running++;
        overlapped ||= running > 1;
        try {
          await sleep(((i * 7) % 5) * 3); // later frames may be faster
          if (i === 3) throw new Error("a failing frame does not stop the next ones");
          done.push(i);
        } finally {
          running--;
        }
      });
    }
    expect(frames.pending).toBe(10);
    await frames.idle();
    expect(done).toEqual([0, 1, 2, 4, 5, 6, 7, 8, 9]);
    expect(overlapped).toBe(false);
    expect(calls).toEqual(["pause", "resume"]);
  });
});

/** A socket whose unread bytes the test controls; sends add to them. */
function fakeSocket(): OutboundSocket & { unread: number; closed?: { code?: number; reason?: string } } {
  const socket = {
    OPEN: 1 as const,
    readyState: 1 as OutboundSocket["readyState"],
    unread: 0,
    closed: undefined as { code?: number; reason?: string } | undefined,
    get bufferedAmount() {
      return socket.unread;
    },
    send(data: unknown) {
      socket.unread += String(data).length;
    },
    close(code?: number, reason?: string | Buffer) {
      socket.closed = { code, reason: String(reason) };
      socket.readyState = 2;
    },
  };
  return socket as unknown as OutboundSocket & { unread: number; closed?: { code?: number; reason?: string } };
}

describe("WsOutbound", () => {
  it("lets updates through while the client reads, waits while it is behind, and resumes when it catches up", async () => {
    const socket = fakeSocket();
    const outbound = new WsOutbound(socket, { highWaterBytes: 100, maxBufferedBytes: 400, stallMs: 5000 });
    expect(await outbound.ready()).toBe(true);
    outbound.send("x".repeat(150));
    expect(outbound.checkpoint()).toBe(true);
    let ready: boolean | undefined;
    const waiting = outbound.ready().then((r) => (ready = r));
    await sleep(30);
    expect(ready).toBeUndefined(); // behind: not pulling more
    socket.unread = 20; // the client read
    await waiting;
    expect(ready).toBe(true);
    expect(socket.closed).toBeUndefined();
  });

  it("closes with 4008 a client that stays behind for stallMs, or lets more than maxBufferedBytes pile up", async () => {
    const tooSlow: string[] = [];
    const stalled = fakeSocket();
    const outbound = new WsOutbound(stalled, { highWaterBytes: 100, maxBufferedBytes: 400, stallMs: 50, onTooSlow: () => tooSlow.push("stalled") });
    outbound.send("x".repeat(150));
    expect(await outbound.ready()).toBe(false);
    expect(stalled.closed).toEqual({ code: WS_CLOSE_TOO_SLOW, reason: "too slow: reconnect with after_seq" });
    expect(outbound.tooSlow).toBe(true);

    const flooded = fakeSocket();
    const bounded = new WsOutbound(flooded, { highWaterBytes: 100, maxBufferedBytes: 400, onTooSlow: () => tooSlow.push("flooded") });
    const checkpoints = [1, 2, 3, 4, 5].map(() => {
      bounded.send("x".repeat(150));
      return bounded.checkpoint();
    });
    // What the last write added is not counted: closed once more than 400 bytes were unread before a write.
    expect(checkpoints).toEqual([true, true, true, false, false]);
    expect(flooded.closed?.code).toBe(WS_CLOSE_TOO_SLOW);
    expect(flooded.unread).toBe(600); // nothing more was sent once it was closing
    expect(tooSlow).toEqual(["stalled", "flooded"]);
  });

  it("lets one update larger than maxBufferedBytes through and waits for the client to read it (a 10 MiB state.delta)", async () => {
    const socket = fakeSocket();
    const outbound = new WsOutbound(socket, { highWaterBytes: 100, maxBufferedBytes: 400, stallMs: 5000 });
    expect(await outbound.ready()).toBe(true);
    outbound.sendAll(["x".repeat(1000)]);
    expect(outbound.checkpoint()).toBe(true);
    expect(outbound.behind).toBe(true);
    let ready: boolean | undefined;
    const waiting = outbound.ready().then((r) => (ready = r));
    await sleep(30);
    expect(ready).toBeUndefined(); // not closed, not writing more: waiting for the client to read
    socket.unread = 20;
    await waiting;
    expect(ready).toBe(true);
    outbound.sendAll(["turn.done"]);
    expect(outbound.checkpoint()).toBe(true);
    expect(socket.closed).toBeUndefined();
  });

  it("next(): true at once while the client keeps up, a wait for it to read after a large update (both bridges call it between updates)", async () => {
    const socket = fakeSocket();
    const outbound = new WsOutbound(socket, { highWaterBytes: 100, maxBufferedBytes: 400, stallMs: 5000 });
    outbound.sendAll(["small"]);
    expect(outbound.next()).toBe(true);
    socket.unread = 0;
    outbound.sendAll(["x".repeat(1000)]);
    const next = outbound.next();
    expect(next).toBeInstanceOf(Promise);
    socket.unread = 20;
    expect(await next).toBe(true);
    expect(socket.closed).toBeUndefined();
  });
});
