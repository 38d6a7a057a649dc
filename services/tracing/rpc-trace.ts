/** Trace context in and out of Connect / gRPC calls, and the span attributes of an RPC (OpenTelemetry rpc.* conventions). */
import type { HandlerContext } from "@connectrpc/connect";
import { parseTraceparent, type TraceContext } from "./trace-context.js";
import { SpanKind, type Attributes, type Span, type Tracer } from "./tracer.js";

/** The caller's trace context from request headers or metadata (undefined when absent or invalid). */
export function incomingTrace(headers: { get(name: string): string | null | undefined }): TraceContext | undefined {
  const traceparent = headers.get("traceparent");
  return traceparent === null || traceparent === undefined ? undefined : parseTraceparent(traceparent, headers.get("tracestate"));
}

/** `rpc.system` / `rpc.service` / `rpc.method` of a handled call. */
export function rpcAttributes(ctx: Pick<HandlerContext, "service" | "method" | "protocolName">): Attributes {
  return { "rpc.system": ctx.protocolName === "connect" ? "connect_rpc" : "grpc", "rpc.service": ctx.service.typeName, "rpc.method": ctx.method.name };
}

/** The OpenTelemetry name of an RPC span: `package.Service/Method`. */
export function rpcSpanName(ctx: Pick<HandlerContext, "service" | "method">): string {
  return `${ctx.service.typeName}/${ctx.method.name}`;
}

/** The server span of a handled call about an instance, continuing the caller's `traceparent` metadata. */
export function rpcServerSpan(tracer: Tracer, ctx: Pick<HandlerContext, "service" | "method" | "protocolName" | "requestHeader">, instanceId: string): Span {
  const parent = incomingTrace(ctx.requestHeader);
  if (!tracer.recording) return tracer.startSpan("", { parent });
  return tracer.startSpan(rpcSpanName(ctx), { parent, kind: SpanKind.SERVER, attributes: { ...rpcAttributes(ctx), "podium.instance_id": instanceId } });
}
