/**
 * An ACP `Stream` over a server-side `ws` WebSocket: one JSON-RPC message per text frame, both ways.
 * A frame that is not JSON is answered with a JSON-RPC parse error (`id: null`) and skipped; the
 * SDK connection handles everything else (including arrays, which ACP refuses).
 */
import type * as acp from "@agentclientprotocol/sdk";
import type { RawData, WebSocket } from "ws";

function text(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString("utf8");
  return data.toString("utf8");
}

export function wsAcpStream(ws: WebSocket): acp.Stream {
  const readable = new ReadableStream<acp.AnyMessage>({
    start(controller) {
      ws.on("message", (data) => {
        let message: unknown;
        try {
          message = JSON.parse(text(data));
        } catch {
          if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ jsonrpc: "2.0", id: null, error: { code: -32700, message: "Parse error" } }));
          return;
        }
        if (typeof message !== "object" || message === null) {
          if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ jsonrpc: "2.0", id: null, error: { code: -32600, message: "Invalid Request" } }));
          return;
        }
        // The SDK validates the message shape itself.
        controller.enqueue(message as acp.AnyMessage);
      });
      ws.on("close", () => {
        try {
          controller.close();
        } catch {
          // already closed or errored
        }
      });
      ws.on("error", (err) => {
        try {
          controller.error(err);
        } catch {
          // already closed
        }
      });
    },
  });
  const writable = new WritableStream<acp.AnyMessage>({
    write(message) {
      if (ws.readyState !== ws.OPEN) throw new Error("the WebSocket is closed");
      return new Promise<void>((resolve, reject) => ws.send(JSON.stringify(message), (err) => (err ? reject(err) : resolve())));
    },
    close() {
      if (ws.readyState === ws.OPEN) ws.close(1000);
    },
    abort() {
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.terminate();
    },
  });
  return { readable, writable };
}
