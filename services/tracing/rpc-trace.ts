/** Trace context in and out of Connect / gRPC calls, and the span attributes of an RPC (OpenTelemetry rpc.* conventions). */
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
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
  if (!tracer.records(parent)) return tracer.startSpan("", { parent });
  return tracer.startSpan(rpcSpanName(ctx), { parent, kind: SpanKind.SERVER, attributes: { ...rpcAttributes(ctx), "podium.instance_id": instanceId } });
}

/** gRPC codes that are the server's own failure (OpenTelemetry rpc conventions): only these mark a server span ERROR. */
const SERVER_FAULTS: ReadonlySet<Code> = new Set([Code.Unknown, Code.DeadlineExceeded, Code.Unimplemented, Code.Internal, Code.Unavailable, Code.DataLoss]);

/**
 * Runs a call's work inside `span` and ends it, with `rpc.grpc.status_code`. A client span is marked ERROR by any
 * error; a server span only by the server's own (a refused or invalid request is the caller's, not an error here).
 * A span that records nothing adds nothing: `work` runs as is.
 */
export function inRpcSpan<T>(span: Span, side: "server" | "client", work: () => Promise<T>): Promise<T> {
  return span.recording ? recordRpc(span, side, work) : work();
}

async function recordRpc<T>(span: Span, side: "server" | "client", work: () => Promise<T>): Promise<T> {
  try {
    const result = await work();
    span.setAttribute("rpc.grpc.status_code", 0);
    return result;
  } catch (err) {
    const code = ConnectError.from(err).code;
    span.setAttribute("rpc.grpc.status_code", code);
    if (side === "client" || SERVER_FAULTS.has(code)) span.fail(err);
    throw err;
  } finally {
    span.end();
  }
}
