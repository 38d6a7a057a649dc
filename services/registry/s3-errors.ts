/**
 * S3 failures as ConnectErrors. The SDK throws service exceptions (with an HTTP status) for answers
 * and plain errors (no status) when the endpoint cannot be reached; the latter, 5xx and throttling are
 * Unavailable so callers and the REST edge (503) know to retry.
 */
import { Code, ConnectError } from "@connectrpc/connect";

interface S3ErrorShape {
  name?: unknown;
  message?: unknown;
  $fault?: unknown;
  $metadata?: { httpStatusCode?: unknown };
}

function shape(error: unknown): S3ErrorShape {
  return typeof error === "object" && error !== null ? (error as S3ErrorShape) : {};
}

export function s3StatusOf(error: unknown): number | undefined {
  const status = shape(error).$metadata?.httpStatusCode;
  return typeof status === "number" ? status : undefined;
}

export function s3ErrorName(error: unknown): string {
  return nameOf(error);
}

function nameOf(error: unknown): string {
  const name = shape(error).name;
  return typeof name === "string" ? name : "";
}

function messageOf(error: unknown): string {
  const message = shape(error).message;
  const raw = typeof message === "string" && message ? message : nameOf(error) || String(error);
  const text = raw.replace(/^AWS SDK error wrapper for (Error: )?/, "");
  return text.length > 300 ? `${text.slice(0, 297)}...` : text;
}

/** The object (or bucket, for HeadBucket) does not exist. */
export function isS3NotFound(error: unknown): boolean {
  const name = nameOf(error);
  if (name === "NoSuchBucket") return false;
  return name === "NoSuchKey" || name === "NotFound" || s3StatusOf(error) === 404;
}

const DENIED = new Set(["AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"]);

/** Maps an S3 SDK failure of `what` (e.g. "upload echo:1.0.0@s3") to a ConnectError. */
export function toS3Error(error: unknown, what: string, bucket: string): ConnectError {
  if (error instanceof ConnectError) return error;
  const name = nameOf(error);
  const status = s3StatusOf(error);
  const message = messageOf(error);
  if (name === "AbortError") return new ConnectError(`${what} aborted`, Code.Canceled);
  if (name === "NoSuchBucket") {
    return new ConnectError(`S3 bucket "${bucket}" does not exist (create it, or enable createBucket): ${what} failed`, Code.FailedPrecondition);
  }
  if (DENIED.has(name) || status === 403) {
    return new ConnectError(`S3 denied ${what} on bucket "${bucket}" (check credentials and bucket policy): ${message}`, Code.FailedPrecondition);
  }
  if (status === undefined || status >= 500 || status === 429 || shape(error).$fault === "server" || name === "TimeoutError") {
    return new ConnectError(`S3 is unavailable: ${what} failed (${message})`, Code.Unavailable);
  }
  return new ConnectError(`S3 ${what} failed: ${message}`, Code.Internal);
}
