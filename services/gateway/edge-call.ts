/**
 * How the REST and WebSocket adapters call the shared handlers (gateway-handlers.ts): with a HandlerContext
 * like the one the Connect router makes (signal, request headers), plus what only an adapter knows.
 */
import { create, type DescMessage, type DescMethodServerStreaming, type DescMethodUnary, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { createContextKey, createContextValues, type ContextValues, type HandlerContext } from "@connectrpc/connect";
import { createInProcessContext, type InProcessContext } from "../shared/in-process-context.js";
import type { DescMethod } from "@bufbuild/protobuf";
import type { Span } from "../tracing/tracer.js";
import type { GatewayHandlers } from "./gateway-handlers.js";

/** The adapter's own server span (REST request, WebSocket frame): the handler works inside it instead of opening an RPC span. */
export const edgeSpanKey = createContextKey<Span | undefined>(undefined, { description: "the adapter's server span" });
/** The instance's agent, when the adapter knows it: named in a `terminated` synthesized before any update was relayed. */
export const streamAgentKey = createContextKey<string | undefined>(undefined, { description: "the streamed instance's agent" });

export interface EdgeCall {
  /** "rest" or "websocket". */
  protocol: string;
  signal?: AbortSignal | undefined;
  headers?: Headers | undefined;
  span?: Span | undefined;
  agentId?: string | undefined;
}

/**
 * The handler's context: Connect's own (`createHandlerContext`) makes two AbortControllers and links them on
 * every call, ~15-25 µs per WebSocket message; this one (the in-process hop's) makes its controller only if
 * the handler reads `signal`. The handler's signal aborts with the caller's, and callUnary / callStream end
 * the context when the call ends (as the router does), so no listener stays on a long-lived caller's signal.
 */
export function edgeContext(method: DescMethod, call: EdgeCall): InProcessContext {
  let values: ContextValues | undefined;
  if (call.span || call.agentId) {
    values = createContextValues();
    if (call.span) values.set(edgeSpanKey, call.span);
    if (call.agentId) values.set(streamAgentKey, call.agentId);
  }
  return createInProcessContext({
    method,
    protocolName: call.protocol,
    ...(call.signal ? { requestSignal: call.signal } : {}),
    ...(call.headers ? { requestHeader: call.headers } : {}),
    ...(values ? { contextValues: values } : {}),
  });
}

type Impl = (req: unknown, ctx: HandlerContext) => unknown;

/** The shared handler of `method` (one of the public services'). */
function handlerOf(handlers: GatewayHandlers, method: DescMethod): Impl {
  const impl = handlers.byService.get(method.parent)?.[method.localName];
  if (typeof impl !== "function") throw new Error(`no handler for ${method.parent.typeName}/${method.name}`);
  return (req, ctx) => (impl as Impl).call(handlers.byService.get(method.parent), req, ctx);
}

/** Calls a unary RPC's handler, as the Connect router would (validation included), and returns the full response message. */
export async function callUnary<I extends DescMessage, O extends DescMessage>(
  handlers: GatewayHandlers,
  method: DescMethodUnary<I, O>,
  input: MessageInitShape<I>,
  call: EdgeCall,
): Promise<MessageShape<O>> {
  const ctx = edgeContext(method, call);
  try {
    const output = (await handlerOf(handlers, method)(create(method.input, input), ctx)) as MessageInitShape<O>;
    return create(method.output, output);
  } finally {
    ctx.abort();
  }
}

/** Calls a server-streaming RPC's handler; yields the full response messages. */
export async function* callStream<I extends DescMessage, O extends DescMessage>(
  handlers: GatewayHandlers,
  method: DescMethodServerStreaming<I, O>,
  input: MessageInitShape<I>,
  call: EdgeCall,
): AsyncGenerator<MessageShape<O>> {
  const ctx = edgeContext(method, call);
  try {
    const stream = handlerOf(handlers, method)(create(method.input, input), ctx) as AsyncIterable<MessageInitShape<O>>;
    for await (const output of stream) yield create(method.output, output);
  } finally {
    ctx.abort();
  }
}
