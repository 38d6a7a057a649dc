/** Small HTTP helpers for the REST edge: bounded body reading, JSON responses, typed errors. */
import type { NodeServerRequest, NodeServerResponse } from "../shared/node-http.js";
import { Code, ConnectError } from "@connectrpc/connect";
import { HTTP_STATUS_HEADER, toHttpError } from "../shared/errors.js";
import type { Json } from "../shared/json.js";
import { isJsonObject, type JsonObject } from "../shared/json.js";
import { parseClientJson } from "../shared/parse-client-json.js";

export type AnyRequest = NodeServerRequest;
export type AnyResponse = NodeServerResponse;

/** Thrown for bodies over the limit; the REST edge answers 413 (see HTTP_STATUS_HEADER). */
export function payloadTooLarge(limit: number): ConnectError {
  return new ConnectError(`request body exceeds the limit of ${limit} bytes`, Code.ResourceExhausted, { [HTTP_STATUS_HEADER]: "413" });
}

export function readBody(req: AnyRequest, limit: number, signal?: AbortSignal): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"] ?? "NaN");
    if (Number.isFinite(declared) && declared > limit) {
      reject(payloadTooLarge(limit));
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const onAbort = () => reject(new ConnectError("request aborted", Code.Canceled));
    signal?.addEventListener("abort", onAbort, { once: true });
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners("data");
        req.resume();
        reject(payloadTooLarge(limit));
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      signal?.removeEventListener("abort", onAbort);
      resolve(Buffer.concat(chunks, size));
    });
    req.on("error", (err) => reject(new ConnectError(`request body: ${err.message}`, Code.Canceled)));
  });
}

export async function readJsonObject(req: AnyRequest, limit: number, signal?: AbortSignal): Promise<JsonObject> {
  const body = await readBody(req, limit, signal);
  if (body.length === 0) return {};
  const value = parseClientJson(body.toString("utf8"), "request body");
  if (!isJsonObject(value)) throw new ConnectError("JSON body must be an object", Code.InvalidArgument);
  return value;
}

export function sendJson(res: AnyResponse, status: number, body: Json, headers: Record<string, string> = {}): void {
  const payload = JSON.stringify(body);
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, { ...headers, "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(payload) });
  res.end(payload);
}

/** The error as JSON with its status, and its headers (`Retry-After` on overload answers). */
export function sendError(res: AnyResponse, err: unknown, extra?: JsonObject): void {
  const { status, body, headers } = toHttpError(err);
  sendJson(res, status, extra ? { ...body, ...extra } : body, headers);
}

/** Typed accessors for a JSON body's optional fields, with precise errors. */
export function optionalString(body: JsonObject, field: string): string | undefined {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") throw new ConnectError(`${field} must be a string`, Code.InvalidArgument);
  return value;
}

export function optionalStringMap(body: JsonObject, field: string): Record<string, string> {
  const value = body[field];
  if (value === undefined || value === null) return {};
  if (!isJsonObject(value)) throw new ConnectError(`${field} must be an object of strings`, Code.InvalidArgument);
  const out: Record<string, string> = {};
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== "string") throw new ConnectError(`${field}.${key} must be a string`, Code.InvalidArgument);
    out[key] = v;
  }
  return out;
}

export function queryInt(params: URLSearchParams, name: string, fallback: number): number {
  const raw = params.get(name);
  if (raw === null || raw === "") return fallback;
  if (!/^\d{1,15}$/.test(raw)) throw new ConnectError(`${name} must be a non-negative integer`, Code.InvalidArgument);
  return Number(raw);
}

/** The request target as a URL; a target that does not parse (e.g. `//[`) is the client's error. */
export function requestUrl(target: string | undefined): URL {
  try {
    return new URL(target ?? "/", "http://localhost");
  } catch {
    throw new ConnectError("malformed request target", Code.InvalidArgument);
  }
}

/** Decodes each path segment; rejects malformed percent-encoding. */
export function decodeSegments(segments: string[]): string {
  try {
    return segments.map((s) => decodeURIComponent(s)).join("/");
  } catch {
    throw new ConnectError("malformed percent-encoding in path", Code.InvalidArgument);
  }
}

/**
 * Streams a FileService.DownloadFile response as raw bytes. Errors before the first byte become a
 * JSON error; after it, the connection is cut (the length header tells the client it is short).
 */
export async function sendDownload(res: AnyResponse, chunks: AsyncIterable<{ file?: { size: bigint; iteration: bigint; hash: string; path: string } | undefined; data: Uint8Array }>): Promise<void> {
  const iterator = chunks[Symbol.asyncIterator]();
  const first = await iterator.next();
  const file = first.done ? undefined : first.value.file;
  if (!file) throw new ConnectError("download returned no file metadata", Code.Internal);
  res.writeHead(200, {
    "content-type": "application/octet-stream",
    "content-length": String(file.size),
    "content-disposition": `attachment; filename="${encodeURIComponent(file.path.split("/").pop() ?? "file")}"`,
    "x-podium-iteration": String(file.iteration),
    "x-podium-hash": file.hash,
  });
  try {
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
      if (next.value.data.length > 0 && !res.write(next.value.data)) await new Promise((resolve) => res.once("drain", resolve));
    }
    res.end();
  } catch {
    res.destroy();
  }
}
