/**
 * Trace context of messages that arrive in WebSocket frames (`/connect`, the translator's `/events`): a
 * `process_message` may carry its own W3C `traceparent` / `tracestate`, else the upgrade request's headers
 * hold the connection's. The message is sent to its coordinator inside the server span of the frame.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { GatewayCore } from "./gateway-core.js";
import type { GatewayHandlers } from "./gateway-handlers.js";
import { callUnary } from "./edge-call.js";
import { InstanceService, type SendMessageRequestSchema, type SendMessageResponse } from "../../gen/podium/v1/instance_service_pb.js";
import { parseTraceparent, type TraceContext } from "../tracing/trace-context.js";
import { SpanKind } from "../tracing/tracer.js";
import { inRpcSpan } from "../tracing/rpc-trace.js";

/** A frame's optional `traceparent` / `tracestate`: strings when present (InvalidArgument otherwise); a malformed traceparent is ignored (W3C: a new trace). */
export function frameTrace(frame: { traceparent?: unknown; tracestate?: unknown }, what: string): TraceContext | undefined {
  const { traceparent, tracestate } = frame;
  if (traceparent === undefined || traceparent === null) return undefined;
  if (typeof traceparent !== "string") throw new ConnectError(`${what}.traceparent must be a string (W3C traceparent)`, Code.InvalidArgument);
  if (tracestate !== undefined && tracestate !== null && typeof tracestate !== "string") throw new ConnectError(`${what}.tracestate must be a string`, Code.InvalidArgument);
  return parseTraceparent(traceparent, tracestate);
}

/** The shared SendMessage handler inside a `WS process_message` server span under `parent`; no span at all when untraced. */
export function sendFromFrame(
  core: Pick<GatewayCore, "tracer">,
  handlers: GatewayHandlers,
  req: MessageInitShape<typeof SendMessageRequestSchema> & { instanceId: string },
  signal: AbortSignal | undefined,
  parent: TraceContext | undefined,
  route: string,
): Promise<SendMessageResponse> {
  const tracer = core.tracer;
  const records = tracer.records(parent);
  const send = InstanceService.method.sendMessage;
  if (!parent && !records) return callUnary(handlers, send, req, { protocol: "websocket", signal });
  const attributes = records ? { "network.protocol.name": "websocket", "http.route": route, "podium.instance_id": req.instanceId } : undefined;
  const span = tracer.startSpan("WS process_message", { parent, kind: SpanKind.SERVER, ...(attributes ? { attributes } : {}) });
  return inRpcSpan(span, "server", () => callUnary(handlers, send, req, { protocol: "websocket", signal, span }));
}
