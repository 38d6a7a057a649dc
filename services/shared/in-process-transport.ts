/**
 * A Connect `Transport` that calls a router's service implementations directly, in the same process:
 * the embedded server's gateway -> coordinator hop (`podium dev`). `createRouterTransport` runs the whole
 * protocol instead (each request and response serialized to protobuf bytes and parsed back, envelopes,
 * async pipes), which costed ~0.15 ms of CPU per message on every round trip for nothing.
 *
 * What a remote call would give is kept: the handler gets a HandlerContext with the caller's headers, a
 * signal that aborts with the caller's signal or the deadline, and response headers and trailers; an error
 * that is not a ConnectError reaches the caller as `internal error` (Code.Internal, the original as its
 * cause), as the Connect handler would send it. Messages are passed by reference, not copied: neither side
 * may change a message after handing it over (Podium's never do).
 */
import { create, isMessage, type DescMessage, type DescMethod, type DescMethodStreaming, type DescMethodUnary, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createConnectRouter,
  createMethodImplSpec,
  createServiceImplSpec,
  type ConnectRouter,
  type ContextValues,
  type MethodImplSpec,
  type StreamResponse,
  type Transport,
  type UnaryResponse,
} from "@connectrpc/connect";
import { createInProcessContext } from "./in-process-context.js";

const PROTOCOL = "in-process";

type HeadersInit = ConstructorParameters<typeof Headers>[0];

function toMessage<T extends DescMessage>(schema: T, value: MessageInitShape<T>): MessageShape<T> {
  return isMessage(value, schema) ? value : create(schema, value);
}

/**
 * Metadata on every error a handler answered with (a remote Connect or gRPC error carries the response's
 * `content-type` or `grpc-status`): the call was handled, so retrying it elsewhere is not safe.
 */
export const IN_PROCESS_ANSWER_HEADER = "x-podium-in-process";

/** The handler's error as the caller gets it: a ConnectError with the handler's headers and trailers. */
function answered(err: unknown, context: { responseHeader: Headers; responseTrailer: Headers }): ConnectError {
  const error = err instanceof ConnectError ? err : new ConnectError("internal error", Code.Internal, undefined, undefined, err);
  for (const headers of [context.responseHeader, context.responseTrailer])
    headers.forEach((value, key) => {
      error.metadata.append(key, value);
    });
  error.metadata.set(IN_PROCESS_ANSWER_HEADER, "1");
  return error;
}

async function* messages<T extends DescMessage>(schema: T, values: AsyncIterable<MessageInitShape<T>>): AsyncGenerator<MessageShape<T>> {
  for await (const value of values) yield toMessage(schema, value);
}

/** Records what `routes` registers (every service of every `router.service(...)` call). */
function collectMethods(routes: (router: ConnectRouter) => void): Map<DescMethod, MethodImplSpec> {
  const methods = new Map<DescMethod, MethodImplSpec>();
  const real = createConnectRouter();
  const recorder: ConnectRouter = {
    get handlers() {
      return real.handlers;
    },
    service(service, implementation, options) {
      for (const spec of Object.values(createServiceImplSpec(service, implementation).methods)) methods.set(spec.method, spec);
      real.service(service, implementation, options);
      return this;
    },
    rpc(method, impl, options) {
      methods.set(method, createMethodImplSpec(method, impl));
      real.rpc(method, impl, options);
      return this;
    },
  };
  routes(recorder);
  return methods;
}

export function createInProcessTransport(routes: (router: ConnectRouter) => void): Transport {
  const methods = collectMethods(routes);
  const implOf = (method: DescMethod): MethodImplSpec => {
    const spec = methods.get(method);
    if (!spec) throw new ConnectError(`${method.parent.typeName}/${method.name} is not implemented here`, Code.Unimplemented);
    return spec;
  };
  const contextFor = (method: DescMethod, signal: AbortSignal | undefined, timeoutMs: number | undefined, header: HeadersInit | undefined, contextValues: ContextValues | undefined) =>
    createInProcessContext({
      method,
      protocolName: PROTOCOL,
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      ...(signal ? { requestSignal: signal } : {}),
      ...(header ? { requestHeader: header } : {}),
      ...(contextValues ? { contextValues } : {}),
    });

  return {
    async unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeadersInit | undefined,
      input: MessageInitShape<I>,
      contextValues?: ContextValues,
    ): Promise<UnaryResponse<I, O>> {
      const spec = implOf(method);
      if (spec.kind !== "unary") throw new ConnectError(`${method.name} is not a unary method`, Code.Internal);
      const context = contextFor(method, signal, timeoutMs, header, contextValues);
      try {
        if (context.cutReason !== undefined) throw context.cutReason;
        const output = await spec.impl(toMessage(method.input, input), context);
        return { stream: false, service: method.parent, method, header: context.responseHeader, trailer: context.responseTrailer, message: toMessage(method.output, output as MessageInitShape<O>) };
      } catch (err) {
        throw answered(context.cutReason !== undefined && !(err instanceof ConnectError) ? ConnectError.from(context.cutReason, Code.Canceled) : err, context);
      } finally {
        context.abort();
      }
    },

    async stream<I extends DescMessage, O extends DescMessage>(
      method: DescMethodStreaming<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeadersInit | undefined,
      input: AsyncIterable<MessageInitShape<I>>,
      contextValues?: ContextValues,
    ): Promise<StreamResponse<I, O>> {
      const spec = implOf(method);
      const context = contextFor(method, signal, timeoutMs, header, contextValues);
      const requests = messages(method.input, input);
      const first = async () => {
        for await (const request of requests) return request;
        throw new ConnectError("protocol error: missing request message", Code.InvalidArgument);
      };
      let outputs: AsyncIterable<MessageInitShape<O>>;
      try {
        if (context.cutReason !== undefined) throw context.cutReason;
        switch (spec.kind) {
          case "server_streaming":
            outputs = spec.impl(await first(), context) as AsyncIterable<MessageInitShape<O>>;
            break;
          case "client_streaming":
            outputs = (async function* () {
              yield (await spec.impl(requests, context)) as MessageInitShape<O>;
            })();
            break;
          case "bidi_streaming":
            outputs = spec.impl(requests, context) as AsyncIterable<MessageInitShape<O>>;
            break;
          default:
            throw new ConnectError(`${method.name} is not a streaming method`, Code.Internal);
        }
      } catch (err) {
        context.abort();
        throw answered(err, context);
      }
      // The caller's abort or deadline ends its reading at once with the reason (as a remote stream's
      // would); the handler learns it from its signal. One listener for the whole stream, failing the read
      // that waits: `Promise.race` with one long-lived promise would keep every message it ever raced
      // reachable (each race leaves a reaction on it) until the stream ends.
      let failWaiting: ((err: unknown) => void) | undefined;
      const stopReason = () => ConnectError.from(context.signal.reason, Code.Canceled);
      context.signal.addEventListener("abort", () => failWaiting?.(stopReason()), { once: true });
      async function* responses(): AsyncGenerator<MessageShape<O>> {
        const iterator = outputs[Symbol.asyncIterator]();
        try {
          for (;;) {
            if (context.signal.aborted) throw stopReason();
            const next = await new Promise<IteratorResult<MessageInitShape<O>>>((resolve, reject) => {
              failWaiting = reject;
              iterator.next().then(resolve, reject);
            });
            failWaiting = undefined;
            if (next.done) return;
            yield toMessage(method.output, next.value);
          }
        } catch (err) {
          throw answered(err, context);
        } finally {
          context.abort();
          iterator.return?.().catch(() => undefined);
        }
      }
      return { stream: true, service: method.parent, method, header: context.responseHeader, trailer: context.responseTrailer, message: responses() };
    },
  };
}
