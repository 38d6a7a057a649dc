/**
 * How a call from the gateway to a coordinator failed, as far as the gateway can tell. This decides
 * whether a create may be retried elsewhere and what counts against a coordinator's circuit breaker:
 *
 * - `not_sent`: the coordinator never saw the call (connection refused, host unreachable, or its
 *   circuit is open). Safe to send anywhere else.
 * - `refused`: the coordinator turned the HTTP/2 stream away before handling it (REFUSED_STREAM,
 *   ENHANCE_YOUR_CALM), or ended its message stream without handling the message: it is alive but will
 *   not take this call now. Safe to send anywhere else.
 * - `no_answer`: the call may have reached the coordinator but no answer came back (the connection was
 *   reset or closed, or the call timed out). Retry only idempotently (a create with its request id).
 * - `answered`: the coordinator answered with this error (it carries the response's metadata:
 *   `grpc-status` over gRPC, `content-type` over Connect, a marker in process).
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { causeChain, errnoCode } from "../shared/errors.js";
import { IN_PROCESS_ANSWER_HEADER } from "../shared/in-process-transport.js";

export type CallFailure = "not_sent" | "refused" | "no_answer" | "answered";

/** Error metadata that marks a call the gateway refused itself because the coordinator's circuit is open. */
export const CIRCUIT_OPEN_HEADER = "x-podium-circuit";

/**
 * Error metadata that marks a message the coordinator is known not to have handled: its message stream
 * ended normally (the coordinator shutting down) before answering it (message-stream-client.ts).
 */
export const NOT_HANDLED_HEADER = "x-podium-not-handled";

/** Errno codes of a connection that was never established: nothing was sent. */
const NOT_CONNECTED = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "EADDRNOTAVAIL"]);

/** HTTP/2 reset codes of a stream the server did not process (as Node and connect-node word them). */
const REFUSED_STREAM = /\b(NGHTTP2_)?(REFUSED_STREAM|ENHANCE_YOUR_CALM)\b/;

/** What a broken connection or an expired deadline surfaces as (connect-node maps socket errors to these). */
const BROKEN_CONNECTION: ReadonlySet<Code> = new Set([Code.Canceled, Code.Aborted, Code.Unavailable, Code.Internal, Code.Unknown, Code.DeadlineExceeded]);

export function callFailure(err: unknown): CallFailure {
  const error = ConnectError.from(err);
  if (error.metadata.get(CIRCUIT_OPEN_HEADER) === "open") return "not_sent";
  if (error.metadata.has(NOT_HANDLED_HEADER)) return "refused";
  if (error.metadata.has("grpc-status") || error.metadata.has("content-type") || error.metadata.has(IN_PROCESS_ANSWER_HEADER)) return "answered";
  const chain = causeChain(err);
  if (chain.some((cause) => cause instanceof Error && REFUSED_STREAM.test(cause.message))) return "refused";
  for (const cause of chain) {
    const code = errnoCode(cause);
    if (code && NOT_CONNECTED.has(code)) return "not_sent";
    if (code === "ETIMEDOUT" && syscallOf(cause) === "connect") return "not_sent";
  }
  return BROKEN_CONNECTION.has(error.code) ? "no_answer" : "answered";
}

function syscallOf(err: unknown): string | undefined {
  if (typeof err !== "object" || err === null || !("syscall" in err)) return undefined;
  const syscall = (err as { syscall: unknown }).syscall;
  return typeof syscall === "string" ? syscall : undefined;
}
