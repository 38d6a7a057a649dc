/**
 * WebSocket `/api/v1/instances/{id}/events`: the browser bridge. Out: the instance's updates as
 * client events (one JSON text frame each, seq per session from 1, gap-free). In: client messages
 * (parse-client-message.ts), each answered by a reply frame correlated by the message's `id`:
 *   {"type":"reply","id":…,"request":"read_file","result":{…}}
 *   {"type":"error","id":…,"request":"read_file","error":{"code","message"}}
 * Query: `after_seq` (replay updates after this StreamUpdate seq, 0 = everything, then live; by
 * default everything after the moment the socket is accepted),
 * `session_id` (default: the instance id), `session_seq` (the client's last event seq; the first
 * event sent gets session_seq + 1). Protocol errors never close the socket.
 */
import type { WebSocket } from "ws";
import { Code, ConnectError } from "@connectrpc/connect";
import { logFrameFailure, type WsConnection, type WsRoute } from "../gateway/ws-bridge.js";
import { instanceJson, isLive } from "../gateway/rest-json.js";
import { toHttpError } from "../shared/errors.js";
import type { JsonObject } from "../shared/json.js";
import type { Logger } from "../shared/logger.js";
import { orderedClientEvent } from "./client-event.js";
import { handleClientMessage } from "./client-message-handler.js";
import type { GatewayCore } from "../gateway/gateway-core.js";
import { gatewayHandlers, type GatewayHandlers } from "../gateway/gateway-handlers.js";
import { callStream, callUnary } from "../gateway/edge-call.js";
import { InstanceService } from "../../gen/podium/v1/instance_service_pb.js";
import { incomingTrace } from "../tracing/rpc-trace.js";
import { nodeHeaders } from "../shared/api-key-auth.js";
import type { TraceContext } from "../tracing/trace-context.js";
import { parseClientMessage, type ClientMessage, type MessageId } from "./parse-client-message.js";
import { parseClientJson } from "../shared/parse-client-json.js";
import { SessionSequencer } from "./session-sequencer.js";
import { translateUpdate } from "./translator-routes.js";
import { OrderedFrames } from "../gateway/ordered-frames.js";
import { WsOutbound, type WsOutboundOptions } from "../gateway/ws-outbound.js";

export interface EventsBridgeOptions {
  core: GatewayCore;
  /** The gateway's shared handlers (made from `core` when not given): every message is one of their RPCs. */
  handlers?: GatewayHandlers;
  logger: Logger;
  /** Clock for updates without a timestamp. Default Date.now. */
  now?: () => number;
  /** Bounds what a slow client may leave unread (closed with 4008 beyond it; see ws-outbound.ts). */
  outbound?: WsOutboundOptions;
}

interface BridgeQuery {
  afterSeq: bigint | undefined;
  sessionId: string | undefined;
  sessionSeq: number;
}

function seqParam(url: URL, name: string): bigint | undefined {
  const raw = url.searchParams.get(name);
  if (raw === null) return undefined;
  if (!/^\d{1,15}$/.test(raw)) throw new ConnectError(`${name} must be a non-negative integer`, Code.InvalidArgument);
  return BigInt(raw);
}

function parseQuery(url: URL): BridgeQuery {
  const sessionId = url.searchParams.get("session_id");
  if (sessionId !== null && (sessionId.length === 0 || sessionId.length > 256)) {
    throw new ConnectError("session_id must be 1 to 256 characters", Code.InvalidArgument);
  }
  return {
    afterSeq: seqParam(url, "after_seq"),
    sessionId: sessionId ?? undefined,
    sessionSeq: Number(seqParam(url, "session_seq") ?? 0n),
  };
}

/** The event frame: the ClientEvent envelope, then `updateSeq` (the StreamUpdate it came from, for `after_seq`). */
export function eventFrame(event: Parameters<typeof orderedClientEvent>[0], updateSeq: bigint): string {
  return JSON.stringify({ ...orderedClientEvent(event), updateSeq: Number(updateSeq) });
}

export function eventsBridgeRoute(options: EventsBridgeOptions): WsRoute {
  const handlers = options.handlers ?? gatewayHandlers(options.core);
  return {
    pattern: /^\/api\/v1\/instances\/([^/]+)\/events$/,
    async accept(req, params, url, connection) {
      const instanceId = params[0] as string;
      const query = parseQuery(url);
      const trace = incomingTrace(nodeHeaders(req.headers)); // for process_message frames without their own
      const { instance } = await callUnary(handlers, InstanceService.method.getInstance, { instanceId }, { protocol: "websocket" });
      if (!instance) throw new ConnectError(`unknown instance ${instanceId}`, Code.NotFound);
      if (!isLive(instance)) throw new ConnectError(`instance ${instanceId} has ${instanceJson(instance).status}`, Code.NotFound);
      // Without after_seq the stream starts at the instance's last update when the socket was
      // accepted: nothing that happens after the handshake can be missed.
      return (ws) => runBridge(options, handlers, connection, ws, instanceId, instance.agentId, query.afterSeq === undefined ? { ...query, afterSeq: instance.lastSeq } : query, trace);
    },
  };
}

function send(ws: WebSocket, frame: string): void {
  if (ws.readyState === ws.OPEN) ws.send(frame);
}

function errorFrame(err: unknown, id: MessageId | undefined, request: string | undefined): string {
  const { body } = toHttpError(err);
  const frame: JsonObject = { type: "error" };
  if (id !== undefined) frame.id = id;
  if (request !== undefined) frame.request = request;
  frame.error = body.error;
  return JSON.stringify(frame);
}

/** The `id` and `type` of a frame that failed validation, when they are usable (so the error can be correlated). */
function roughIdentity(json: unknown): { id: MessageId | undefined; request: string | undefined } {
  if (typeof json !== "object" || json === null || Array.isArray(json)) return { id: undefined, request: undefined };
  const record = json as Record<string, unknown>;
  const id = record.id;
  const type = record.type;
  return {
    id: (typeof id === "string" && id.length > 0 && id.length <= 256) || (typeof id === "number" && Number.isSafeInteger(id)) ? id : undefined,
    request: typeof type === "string" && type.length <= 64 ? type : undefined,
  };
}

function runBridge(
  options: EventsBridgeOptions,
  handlers: GatewayHandlers,
  connection: WsConnection,
  ws: WebSocket,
  instanceId: string,
  agentId: string,
  query: BridgeQuery,
  trace: TraceContext | undefined,
): void {
  const { core, logger } = options;
  const now = options.now ?? Date.now;
  const controller = new AbortController();
  ws.on("close", () => controller.abort());
  ws.on("error", () => controller.abort());
  // process_message / cancel / answer reach the instance one at a time, in the order sent (and are delivered
  // even if the client closes meanwhile); file messages run beside them and end with the socket.
  const ordered = new OrderedFrames(ws);
  const outbound = new WsOutbound(ws, options.outbound);

  ws.on("message", (data, isBinary) => {
    const text = isBinary ? Buffer.from(data as Buffer).toString("utf8") : data.toString();
    let json: unknown;
    try {
      json = parseClientJson(text, "message");
    } catch (err) {
      logFrameFailure(logger, connection, `/events message to ${instanceId}`, err);
      send(ws, errorFrame(err, undefined, undefined));
      return;
    }
    const rough = roughIdentity(json);
    const handle = async (signal: AbortSignal | undefined): Promise<void> => {
      try {
        const message = parseClientMessage(json);
        const result = await handleClientMessage(core, handlers, instanceId, message, signal, trace);
        // process_message / cancel / answer without an id succeed silently; file messages always get their result.
        if (message.id === undefined && !isFileMessage(message)) return;
        const reply: JsonObject = { type: "reply" };
        if (message.id !== undefined) reply.id = message.id;
        reply.request = message.type;
        reply.result = result;
        send(ws, JSON.stringify(reply));
      } catch (err: unknown) {
        if (signal?.aborted) return;
        logFrameFailure(logger, connection, `/events ${rough.request ?? "message"} to ${instanceId}`, err);
        send(ws, errorFrame(err, rough.id, rough.request));
      }
    };
    if (rough.request === "process_message" || rough.request === "cancel" || rough.request === "answer") ordered.push(() => handle(undefined));
    else void handle(controller.signal);
  });

  void (async () => {
    const sequencer = new SessionSequencer({ sessionId: query.sessionId ?? instanceId, instanceId, lastSeq: query.sessionSeq });
    const request = query.afterSeq === undefined ? { instanceId } : query.afterSeq === 0n ? { instanceId, replayAll: true } : { instanceId, afterSeq: query.afterSeq };
    try {
      for await (const { updates } of callStream(handlers, InstanceService.method.streamUpdates, request, { protocol: "websocket", signal: controller.signal, agentId })) {
        // Pull no further while the client has not read what it was sent (closed with 4008 if it never does).
        if (!(await outbound.ready())) break;
        for (const update of updates) {
          if (query.afterSeq !== undefined && update.seq <= query.afterSeq) continue;
          // Every event of an update, then the limit: a client closed for being slow resumes after a whole update.
          for (const event of translateUpdate(update, sequencer, now)) outbound.send(eventFrame(event, update.seq));
          const next = outbound.next(); // a large update (a state_delta over maxBufferedBytes) is read before the next
          if (next !== true && !(await next)) break;
        }
        if (outbound.tooSlow) break;
      }
      if (ws.readyState === ws.OPEN) ws.close(1000, "instance ended");
    } catch (err) {
      if (controller.signal.aborted) return;
      logFrameFailure(logger, connection, `/events event stream of ${instanceId}`, err);
      send(ws, errorFrame(err, undefined, undefined));
      if (ws.readyState === ws.OPEN) ws.close(1011, "update stream failed");
    }
  })();
}

function isFileMessage(message: ClientMessage): boolean {
  return message.type !== "process_message" && message.type !== "cancel" && message.type !== "answer";
}
