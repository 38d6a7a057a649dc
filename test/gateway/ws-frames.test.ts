/**
 * Frames the gateway encodes itself (ws-frames.ts, WsOutbound.sendAll) read by a real `ws` client exactly as
 * `ws`'s own: every length class of the header (7-bit, 16-bit, 64-bit), multi-byte UTF-8, order kept with
 * frames `ws` sends in between, and a permessage-deflate connection falling back to `ws`'s sends.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import type { AddressInfo } from "node:net";
import { WebSocket, WebSocketServer } from "ws";
import { encodeTextFrames } from "../../services/gateway/ws-frames.js";
import { WsOutbound } from "../../services/gateway/ws-outbound.js";

let server: WebSocketServer | undefined;

afterEach(async () => {
  for (const client of server?.clients ?? []) client.terminate();
  await new Promise((resolve) => server?.close(resolve));
  server = undefined;
});

/** A server that hands its first connection to `onConnection`, and a client that collects `count` messages. */
async function exchange(count: number, onConnection: (ws: WebSocket) => void, perMessageDeflate = false): Promise<string[]> {
  server = new WebSocketServer({ port: 0, host: "127.0.0.1", perMessageDeflate });
  server.on("connection", onConnection);
  await new Promise((resolve) => server?.once("listening", resolve));
  const client = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`, { perMessageDeflate });
  const received: string[] = [];
  await new Promise<void>((resolve, reject) => {
    client.on("message", (data, isBinary) => {
      expect(isBinary).toBe(false);
      received.push(data.toString());
      if (received.length === count) resolve();
    });
    client.on("error", reject);
  });
  client.close();
  return received;
}

const texts = [
  "",
  "x",
  "é".repeat(62) + "a", // 125 bytes: the largest 7-bit length
  "a".repeat(126), // the smallest 16-bit length
  "😀".repeat(16383) + "abc", // 65,535 bytes
  "b".repeat(65536), // the smallest 64-bit length
  JSON.stringify({ messageType: "stream_update", content: { text: "z".repeat(200_000) } }),
];

describe("encodeTextFrames", () => {
  it("is read by a ws client as the same messages, in order, for every header length", async () => {
    const received = await exchange(texts.length, (ws) => (ws as unknown as { _socket: { write(b: Buffer): void } })._socket.write(encodeTextFrames(texts)));
    expect(received).toEqual(texts);
  });
});

describe("WsOutbound.sendAll", () => {
  it("writes its own frames to the socket, in order with frames ws sends", async () => {
    const received = await exchange(texts.length + 2, (ws) => {
      const outbound = new WsOutbound(ws, {}, (ws as unknown as { _socket: { write(b: Buffer): boolean } })._socket);
      ws.send("first");
      outbound.sendAll(texts);
      ws.send("last");
    });
    expect(received).toEqual(["first", ...texts, "last"]);
  });

  it("sends through ws when an extension is negotiated (permessage-deflate)", async () => {
    let raw = 0;
    const received = await exchange(
      texts.length,
      (ws) => {
        expect(ws.extensions).toContain("permessage-deflate");
        const socket = (ws as unknown as { _socket: { write(b: Buffer): boolean } })._socket;
        new WsOutbound(ws, {}, { write: (data) => (raw++, socket.write(data)) }).sendAll(texts);
      },
      true,
    );
    expect(received).toEqual(texts);
    expect(raw).toBe(0);
  });
});
