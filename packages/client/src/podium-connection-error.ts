/**
 * The one error every PodiumClient operation fails with. `kind` says what went wrong on our side of
 * the wire; `status` and `code` carry the server's answer when there was one (`{error:{code,message}}`).
 */
export type PodiumErrorKind =
  /** The server answered with a non-success status (see `status`, `code`). */
  | "http"
  /** The request never got an answer: connection refused, reset, DNS, TLS. */
  | "network"
  /** No answer within the operation's timeout. */
  | "timeout"
  /** The caller's AbortSignal fired (`cause` is its reason). */
  | "aborted"
  /** createInstance refused without a request: the circuit breaker is open. */
  | "circuit_open"
  /** The server answered 2xx with something that is not what the API promises. */
  | "protocol"
  /** The WebSocket is closed, or closed abnormally while events were being read. */
  | "closed";

export interface PodiumConnectionErrorOptions {
  kind: PodiumErrorKind;
  cause?: unknown;
  status?: number;
  code?: string;
}

export class PodiumConnectionError extends Error {
  override readonly name = "PodiumConnectionError";
  readonly kind: PodiumErrorKind;
  /** HTTP status of the server's answer, when there was one. */
  readonly status?: number;
  /** `error.code` of the server's JSON error body (e.g. "not_found"), when it sent one. */
  readonly code?: string;

  constructor(message: string, options: PodiumConnectionErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.kind = options.kind;
    if (options.status !== undefined) this.status = options.status;
    if (options.code !== undefined) this.code = options.code;
  }
}

/** Transient failures: worth retrying, and evidence that Podium is unhealthy (they trip the breaker). */
export function isTransient(error: unknown): boolean {
  if (!(error instanceof PodiumConnectionError)) return false;
  switch (error.kind) {
    case "network":
    case "timeout":
      return true;
    case "http":
      return error.status !== undefined && (error.status >= 500 || error.status === 429 || error.status === 408);
    default:
      return false;
  }
}

export function abortedError(signal: AbortSignal, what: string): PodiumConnectionError {
  return new PodiumConnectionError(`${what} was aborted`, { kind: "aborted", cause: signal.reason });
}
