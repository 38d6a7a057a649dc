/**
 * Request ids and failure logs on the gateway's WebSocket edge (ws-bridge.ts): the upgrade answers with
 * `x-request-id` (the caller's own when usable) on the 101 and on a refusal; a refused upgrade is logged
 * once under that id without the query (it may hold an api_key); a failed frame is logged under the id the
 * client got on its upgrade. Endpoints here are test routes over the real upgrade handler; /connect and
 * /events log their frames through the same logFrameFailure.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import http from "node:http";
import type { AddressInfo } from "node:net";
import WebSocket from "ws";
import { Code, ConnectError } from "@connectrpc/connect";
import { createWsUpgradeHandler, logFrameFailure, sendWsError } from "../../services/gateway/ws-bridge.js";
import { ApiKeyAuth } from "../../services/shared/api-key-auth.js";
import { createLogger } from "../../services/shared/logger.js";
import { REQUEST_ID_HEADER } from "../../services/shared/request-log.js";

const lines: Record<string, unknown>[] = [];
const logger = createLogger({ level: "debug", write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) });
let server: http.Server;
let url: string;
let close: () => void;

beforeAll(async () => {
  const upgrades = createWsUpgradeHandler({
    auth: new ApiKeyAuth(["k"]),
    logger,
    maxFrameBytes: 1024,
    routes: [
      {
        pattern: /^\/echo$/,
        async accept(_req, _params, _url, connection) {
          return (ws) =>
            ws.on("message", () => {
              const err = new ConnectError("frames here are refused", Code.InvalidArgument);
              logFrameFailure(logger, connection, "/echo frame", err);
              sendWsError(ws, err);
            });
        },
      },
      {
        pattern: /^\/broken$/,
        async accept() {
          throw new Error("disk /var/lib/podium is on fire");
        },
      },
    ],
  });
  close = upgrades.close;
  server = http.createServer((_req, res) => res.end()).on("upgrade", upgrades.handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  close();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

/** Opens `path`; resolves with the socket and the upgrade's request id, or the refusal's status, id and body. */
function open(path: string, headers: Record<string, string> = {}): Promise<{ ws?: WebSocket; status: number; requestId: string | undefined; body?: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url}${path}`, { headers });
    ws.once("upgrade", (res) => ws.once("open", () => resolve({ ws, status: 101, requestId: res.headers[REQUEST_ID_HEADER] as string | undefined })));
    ws.once("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (chunk: Buffer) => (body += chunk.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, requestId: res.headers[REQUEST_ID_HEADER] as string | undefined, body }));
    });
    ws.once("error", (err) => reject(err));
  });
}

describe("WebSocket request ids", () => {
  it("answers the upgrade with the caller's id and logs a failed frame under it", async () => {
    const { ws, requestId } = await open("/echo?api_key=k", { [REQUEST_ID_HEADER]: "ws-trace-1" });
    expect(requestId).toBe("ws-trace-1");
    const reply = new Promise<string>((resolve) => ws?.once("message", (data: Buffer) => resolve(data.toString())));
    ws?.send("{}");
    expect(JSON.parse(await reply)).toEqual({ type: "error", error: { code: "invalid_argument", message: "frames here are refused" } });
    expect(lines.filter((l) => l.request_id === "ws-trace-1")).toEqual([
      expect.objectContaining({ level: "debug", msg: "request refused", request: "/echo frame", status: 400, error: "[invalid_argument] frames here are refused" }),
    ]);
    ws?.close();
  });

  it("answers a refused upgrade with an id, the contract's body and no host path, and logs it once without the query", async () => {
    const refused = await open("/broken?api_key=k");
    expect(refused.status).toBe(500);
    expect(refused.requestId).toMatch(/^req_/);
    expect(JSON.parse(refused.body ?? "")).toEqual({ error: { code: "unknown", message: "internal error" } });
    expect(lines.filter((l) => l.request_id === refused.requestId)).toEqual([
      expect.objectContaining({ level: "error", msg: "request failed", request: "WebSocket /broken", status: 500, error: "disk /var/lib/podium is on fire" }),
    ]);
    const unauthenticated = await open("/echo?api_key=wrong");
    expect(unauthenticated.status).toBe(401);
    expect(lines.filter((l) => l.request_id === unauthenticated.requestId).map((l) => l.level)).toEqual(["debug"]);
  });
});
