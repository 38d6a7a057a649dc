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
  return { status, body: { error: { code: codeName(connectError.code), message } } };
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
