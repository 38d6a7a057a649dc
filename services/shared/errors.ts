/**
 * One table maps Connect codes to HTTP statuses and the REST error body `{error:{code,message}}`.
 * Handlers throw ConnectError; the REST and WebSocket edges call `toHttpError`.
 */
import { Code, ConnectError } from "@connectrpc/connect";

const HTTP_STATUS: Record<Code, number> = {
  [Code.Canceled]: 499,
  [Code.Unknown]: 500,
  [Code.InvalidArgument]: 400,
  [Code.DeadlineExceeded]: 504,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.PermissionDenied]: 403,
  [Code.ResourceExhausted]: 429,
  [Code.FailedPrecondition]: 400,
  [Code.Aborted]: 409,
  [Code.OutOfRange]: 400,
  [Code.Unimplemented]: 501,
  [Code.Internal]: 500,
  [Code.Unavailable]: 503,
  [Code.DataLoss]: 500,
  [Code.Unauthenticated]: 401,
};

/** snake_case names of the codes, as in the gRPC spec ("not_found", "invalid_argument", ...). */
export function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

export function httpStatusOf(code: Code): number {
  return HTTP_STATUS[code] ?? 500;
}

export interface HttpError {
  status: number;
  body: { error: { code: string; message: string } };
  /** Response headers the error asks for (`retry-after`, `allow`). */
  headers: Record<string, string>;
}

/** Error metadata (and HTTP header) telling a client how many seconds to wait before trying again. */
export const RETRY_AFTER_HEADER = "retry-after";

/** The error's `retry-after` in whole seconds, when it has a valid one. */
export function retryAfterOf(err: unknown): string | undefined {
  const value = ConnectError.from(err).metadata.get(RETRY_AFTER_HEADER)?.trim();
  return value !== undefined && /^\d{1,6}$/.test(value) ? value : undefined;
}

/**
 * An overload answer (RESOURCE_EXHAUSTED or UNAVAILABLE) with a `retry-after` (the one it carries, else
 * `defaultSeconds`) and no other metadata: what a client gets when a coordinator or the gateway is too
 * busy, never the upstream's own response headers. Other errors are returned unchanged.
 */
export function withRetryAfter(err: unknown, defaultSeconds = 1): unknown {
  const error = ConnectError.from(err);
  if (error.code !== Code.ResourceExhausted && error.code !== Code.Unavailable) return err;
  const seconds = retryAfterOf(error) ?? String(defaultSeconds);
  return new ConnectError(error.rawMessage, error.code, { [RETRY_AFTER_HEADER]: seconds }, undefined, error.cause);
}

/** Error metadata key that overrides the HTTP status for one error (e.g. 413 for a body over the limit). */
export const HTTP_STATUS_HEADER = "x-podium-http-status";

/** Any thrown value -> a status and a JSON body. Internal errors never leak stacks or messages. */
export function toHttpError(err: unknown): HttpError {
  const connectError = ConnectError.from(err);
  const internal = connectError.code === Code.Internal || connectError.code === Code.Unknown;
  const message = internal && !(err instanceof ConnectError) ? "internal error" : connectError.rawMessage;
  const override = Number(connectError.metadata.get(HTTP_STATUS_HEADER));
  const status = Number.isInteger(override) && override >= 400 && override < 600 ? override : httpStatusOf(connectError.code);
  const retryAfter = retryAfterOf(connectError);
  const allow = status === 405 ? connectError.metadata.get(ALLOW_HEADER) : null;
  const headers: Record<string, string> = {};
  if (retryAfter) headers[RETRY_AFTER_HEADER] = retryAfter;
  if (allow) headers[ALLOW_HEADER] = allow;
  return { status, body: { error: { code: codeName(connectError.code), message } }, headers };
}

/** Error metadata (and HTTP header) of a 405: the methods the path does take. */
export const ALLOW_HEADER = "allow";

/** 405 Method Not Allowed (code UNIMPLEMENTED), with the methods the path takes in `Allow`. */
export function methodNotAllowed(method: string, path: string, allowed: readonly string[]): ConnectError {
  return new ConnectError(`method ${method} is not allowed on ${path}; it takes ${allowed.join(", ")}`, Code.Unimplemented, {
    [HTTP_STATUS_HEADER]: "405",
    [ALLOW_HEADER]: allowed.join(", "),
  });
}

export function notFound(message: string): ConnectError {
  return new ConnectError(message, Code.NotFound);
}

export function invalidArgument(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The errno code of a Node system error ("ENOENT", …). Does not use `instanceof Error`, which is
 * false for errors from another realm (Node's fs errors inside jest's VM contexts).
 */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err !== "object" || err === null || !("code" in err)) return undefined;
  const code = (err as { code: unknown }).code;
  return typeof code === "string" ? code : undefined;
}

/** The error itself and its `cause`s, outermost first (guarded against cycles). */
export function causeChain(err: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let current = err; typeof current === "object" && current !== null && !chain.includes(current); ) {
    chain.push(current);
    current = "cause" in current ? (current as { cause: unknown }).cause : undefined;
  }
  return chain;
}
