/**
 * WebSocket `/api/v1/instances/{id}/connect`: the native StreamUpdate stream as JSON frames, and
 * `process_message` frames in. `?after_seq=N` replays what the client missed, then goes live.
 * Protocol errors come back as `{"type":"error","error":{code,message}}` and never close the socket.
 * Every upgrade gets a request id (the caller's `x-request-id`, else a new one), sent back on the 101 or the
 * refusal as `x-request-id`; a refused upgrade and every failed frame of the connection are logged once
 * under it, with the cause (request-log.ts).
 */
import http from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket } from "ws";
import { Code, ConnectError } from "@connectrpc/connect";
import type { GatewayCore } from "./gateway-core.js";
import { instanceJson, isLive, updateFrameText } from "./rest-json.js";
import { ApiKeyAuth, nodeHeaders } from "../shared/api-key-auth.js";
import { errorMessage, toHttpError } from "../shared/errors.js";
import { decodeSegments, requestUrl } from "./http-io.js";
import { isJsonObject } from "../shared/json.js";
import { parseClientJson } from "../shared/parse-client-json.js";
import { busyPolicyToProto, parseMultitaskStrategy } from "../shared/busy-policy.js";
import type { Logger } from "../shared/logger.js";
import { logFailedRequest, REQUEST_ID_HEADER, requestIdFrom } from "../shared/request-log.js";
import { OrderedFrames } from "./ordered-frames.js";
import { WsOutbound, type WsOutboundOptions } from "./ws-outbound.js";
import type { TraceContext } from "../tracing/trace-context.js";
import { incomingTrace } from "../tracing/rpc-trace.js";
import { frameTrace, sendFromFrame } from "./frame-trace.js";
import { gatewayHandlers, type GatewayHandlers } from "./gateway-handlers.js";
import { callStream, callUnary } from "./edge-call.js";
import { fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { InstanceService } from "../../gen/podium/v1/instance_service_pb.js";

export interface WsRoute {
  pattern: RegExp;
  /**
   * Called after auth with the pattern's groups, percent-decoded (bad escapes were refused with 400);
   * may reject with a ConnectError (mapped to an HTTP status on the upgrade). `connection.requestId` is the
   * upgrade's request id, under which the endpoint logs its failed frames (logFrameFailure).
   */
  accept(req: http.IncomingMessage, params: string[], url: URL, connection: WsConnection): Promise<(ws: WebSocket, socket: Duplex) => void>;
}

/** What an endpoint knows of its connection beside the request: the id the client got on the upgrade. */
export interface WsConnection {
  requestId: string;
}

export interface WsBridgeOptions {
  auth: ApiKeyAuth;
  logger: Logger;
  maxFrameBytes: number;
  routes: WsRoute[];
}

function refuse(socket: Duplex, status: number, code: string, message: string, requestId: string): void {
  const body = JSON.stringify({ error: { code, message } });
  const head = `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? "Error"}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${REQUEST_ID_HEADER}: ${requestId}`;
  socket.end(`${head}\r\nconnection: close\r\n\r\n${body}`);
}

export function sendWsError(ws: WebSocket, err: unknown): void {
  const { body } = toHttpError(err);
  if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: "error", error: body.error }));
}

/** Logs a frame of a WebSocket connection that failed (`what`: e.g. "/connect process_message"), once, under the upgrade's request id. */
export function logFrameFailure(logger: Logger, connection: WsConnection, what: string, err: unknown): void {
  const status = toHttpError(err).status;
  logFailedRequest(logger, { requestId: connection.requestId, what, status, serverSide: status >= 500, err });
}

/** The HTTP `upgrade` handler for every WebSocket endpoint of the gateway. */
export function createWsUpgradeHandler(options: WsBridgeOptions) {
  const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxFrameBytes });
  const requestIds = new WeakMap<http.IncomingMessage, string>();
  wss.on("headers", (headers, req) => {
    const requestId = requestIds.get(req);
    if (requestId) headers.push(`${REQUEST_ID_HEADER}: ${requestId}`);
  });
  const handler = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => socket.destroy());
    const connection: WsConnection = { requestId: requestIdFrom(nodeHeaders(req.headers).get(REQUEST_ID_HEADER)) };
    requestIds.set(req, connection.requestId);
    void (async () => {
      let onOpen: (ws: WebSocket, socket: Duplex) => void;
      try {
        const url = requestUrl(req.url);
        const route = options.routes.find((r) => r.pattern.test(url.pathname));
        if (!route) throw new ConnectError(`no WebSocket endpoint at ${url.pathname}`, Code.NotFound);
        const key = ApiKeyAuth.extract(nodeHeaders(req.headers), url.searchParams.get("api_key"));
        if (!options.auth.verify(key)) throw new ConnectError(key ? "invalid API key" : "missing API key", Code.Unauthenticated);
        const params = (route.pattern.exec(url.pathname) ?? []).slice(1).map((param) => decodeSegments([param]));
        onOpen = await route.accept(req, params, url, connection);
      } catch (err) {
        const { status, body } = toHttpError(err);
        // The path without its query (which may hold an api_key).
        const target = (req.url ?? "").split("?")[0]?.slice(0, 256) ?? "";
        logFailedRequest(options.logger, { requestId: connection.requestId, what: `WebSocket ${target}`, status, serverSide: status >= 500, err });
        return refuse(socket, status, body.error.code, body.error.message, connection.requestId);
      }
      wss.handleUpgrade(req, socket, head, (ws) => onOpen(ws, socket));
    })().catch((err) => {
      options.logger.error("websocket upgrade failed", { error: errorMessage(err) });
      socket.destroy();
    });
  };
  return { handler, close: () => wss.close() };
}

/**
 * `/api/v1/instances/{id}/connect`. `outbound` bounds what a slow client may leave unread (ws-outbound.ts). A thin adapter:
 * GetInstance, SendMessage, CancelTurn, AnswerRequest and StreamUpdates are the shared handlers (gateway-handlers.ts).
 */
export function instanceConnectRoute(core: GatewayCore, logger: Logger, outbound: WsOutboundOptions = {}, handlers: GatewayHandlers = gatewayHandlers(core)): WsRoute {
  return {
    pattern: /^\/api\/v1\/instances\/([^/]+)\/connect$/,
    async accept(req, params, url, connection) {
      const instanceId = params[0] as string;
      const { instance } = await callUnary(handlers, InstanceService.method.getInstance, { instanceId }, { protocol: "websocket" });
      if (!instance) throw new ConnectError(`unknown instance ${instanceId}`, Code.NotFound);
      if (!isLive(instance)) throw new ConnectError(`instance ${instanceId} has ${instanceJson(instance).status}`, Code.NotFound);
      const afterRaw = url.searchParams.get("after_seq");
      if (afterRaw !== null && !/^\d{1,15}$/.test(afterRaw)) throw new ConnectError("after_seq must be a non-negative integer", Code.InvalidArgument);
      // Without after_seq the stream starts "live" at the upgrade: after the last seq as of now, so the events
      // emitted before the upstream stream is subscribed (e.g. the answer to a message sent at once) are not lost.
      const afterSeq = afterRaw === null ? instance.lastSeq : BigInt(afterRaw);
      // The upgrade's traceparent is the parent of every process_message of the connection that brings none of its own.
      const trace = incomingTrace(nodeHeaders(req.headers));
      return (ws, socket) => bridgeInstance({ core, handlers, logger, connection, ws, instanceId, agentId: instance.agentId, afterSeq, outbound: new WsOutbound(ws, outbound, socket), trace });
    },
  };
}

/**
 * The frames a client may send on `/connect`: process_message, cancel, answer. A process_message may carry its
 * own W3C `traceparent` (and `tracestate`); else `connectionTrace`, the upgrade request's, is its parent.
 */
export async function handleInboundFrame(core: GatewayCore, handlers: GatewayHandlers, instanceId: string, frame: unknown, signal?: AbortSignal, connectionTrace?: TraceContext): Promise<void> {
  const type = isJsonObject(frame) ? frame.type : undefined;
  if (!isJsonObject(frame) || (type !== "process_message" && type !== "cancel" && type !== "answer")) {
    throw new ConnectError(`unsupported frame type ${JSON.stringify(type ?? null)}; expected "process_message", "cancel" or "answer"`, Code.InvalidArgument);
  }
  if (type === "process_message") {
    if (!isJsonObject(frame.content)) throw new ConnectError("process_message.content must be an object", Code.InvalidArgument);
    const strategy = busyPolicyToProto(parseMultitaskStrategy(frame.multitask_strategy, "process_message.multitask_strategy"));
    const parent = frameTrace(frame, "process_message") ?? connectionTrace;
    await sendFromFrame(core, handlers, { instanceId, content: frame.content, multitaskStrategy: strategy }, signal, parent, "/api/v1/instances/{id}/connect");
  } else if (type === "cancel") {
    const turn = frame.turn ?? 0;
    if (typeof turn !== "number" || !Number.isInteger(turn) || turn < 0) throw new ConnectError("cancel.turn must be a non-negative integer", Code.InvalidArgument);
    await callUnary(handlers, InstanceService.method.cancelTurn, { instanceId, turn: BigInt(turn) }, { protocol: "websocket", signal });
  } else {
    if (typeof frame.request_id !== "string" || frame.request_id === "") throw new ConnectError("answer.request_id must be a non-empty string", Code.InvalidArgument);
    const answer = { instanceId, requestId: frame.request_id, value: fromJson(ValueSchema, frame.value ?? null) };
    await callUnary(handlers, InstanceService.method.answerRequest, answer, { protocol: "websocket", signal });
  }
}

/** Frames of one batch written to the socket at once, at most about this many characters. */
const FLUSH_BYTES = 64 * 1024;

interface InstanceBridge {
  core: GatewayCore;
  handlers: GatewayHandlers;
  logger: Logger;
  connection: WsConnection;
  ws: WebSocket;
  instanceId: string;
  agentId: string;
  afterSeq: bigint;
  outbound: WsOutbound;
  /** The upgrade request's trace context. */
  trace: TraceContext | undefined;
}

function bridgeInstance({ core, handlers, logger, connection, ws, instanceId, agentId, afterSeq, outbound, trace }: InstanceBridge): void {
  const controller = new AbortController();
  ws.on("close", () => controller.abort());
  ws.on("error", () => controller.abort());
  // In order, one at a time: a frame reaches the coordinator (which gives it its seq) before the next is sent.
  // Not cut when the client closes: a frame that reached the gateway is delivered.
  const inbound = new OrderedFrames(ws);
  ws.on("message", (data, isBinary) => {
    const text = isBinary ? Buffer.from(data as Buffer).toString("utf8") : data.toString();
    inbound.push(async () => {
      try {
        await handleInboundFrame(core, handlers, instanceId, parseClientJson(text, "frame"), undefined, trace);
      } catch (err) {
        logFrameFailure(logger, connection, `/connect frame of ${instanceId}`, err);
        sendWsError(ws, err);
      }
    });
  });
  void (async () => {
    const request = afterSeq === 0n ? { instanceId, replayAll: true } : { instanceId, afterSeq };
    try {
      for await (const { updates } of callStream(handlers, InstanceService.method.streamUpdates, request, { protocol: "websocket", signal: controller.signal, agentId })) {
        // Pull no further while the client has not read what it was sent (closed with 4008 if it never does).
        if (!(await outbound.ready())) break;
        // Frames go out in writes of up to FLUSH_BYTES, each followed by a checkpoint (never inside an update).
        let frames: string[] = [];
        let bytes = 0;
        for (const update of updates) {
          const frame = updateFrameText(update);
          frames.push(frame);
          bytes += frame.length;
          if (bytes < FLUSH_BYTES) continue;
          outbound.sendAll(frames);
          frames = [];
          bytes = 0;
          const next = outbound.next();
          if (next !== true && !(await next)) break;
        }
        if (frames.length > 0) {
          outbound.sendAll(frames);
          outbound.checkpoint();
        }
        if (outbound.tooSlow) break;
      }
      if (ws.readyState === ws.OPEN) ws.close(1000, "instance ended");
    } catch (err) {
      if (controller.signal.aborted) return;
      logFrameFailure(logger, connection, `/connect update stream of ${instanceId}`, err);
      sendWsError(ws, err);
      if (ws.readyState === ws.OPEN) ws.close(1011, "update stream failed");
    }
  })();
}
