/**
 * The console's only way to the server: the public REST API under /api/v1 and the `/connect`
 * WebSocket, on the origin that served the page, with the API key from session storage.
 */
import type { Json, JsonObject } from "./api-types.js";

const KEY_STORAGE = "podium.apiKey";

/** An error answer of the API: `{"error":{"code","message"}}` with its HTTP status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** The whole error body (e.g. GET /instances/{id} of an ended instance has its final `instance`). */
    readonly body: JsonObject = {},
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export function storedKey(): string {
  return sessionStorage.getItem(KEY_STORAGE) ?? "";
}

export function storeKey(key: string): void {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const key = storedKey();
  return key ? { authorization: `Bearer ${key}`, ...extra } : extra;
}

async function errorOf(res: Response): Promise<ApiError> {
  const text = await res.text();
  try {
    const body = JSON.parse(text) as JsonObject & { error?: { code?: string; message?: string } };
    return new ApiError(res.status, body.error?.code ?? "unknown", body.error?.message ?? text, body);
  } catch {
    return new ApiError(res.status, "unknown", text.slice(0, 500) || res.statusText);
  }
}

/** A JSON request to the API; throws ApiError for any answer that is not 2xx. */
export async function api<T>(method: string, path: string, body?: Json | Blob): Promise<T> {
  const isBlob = body instanceof Blob;
  const res = await fetch(path, {
    method,
    headers: headers(body === undefined ? {} : { "content-type": isBlob ? "application/gzip" : "application/json" }),
    ...(body === undefined ? {} : { body: isBlob ? body : JSON.stringify(body) }),
  });
  if (!res.ok) throw await errorOf(res);
  const text = await res.text();
  return (text ? JSON.parse(text) : {}) as T;
}

/** Plain text (GET /metrics). */
export async function apiText(path: string): Promise<string> {
  const res = await fetch(path, { headers: headers() });
  if (!res.ok) throw await errorOf(res);
  return res.text();
}

/** True when the API answers with the stored key (or needs none, as `podium dev` without keys). */
export async function keyAccepted(key: string): Promise<boolean> {
  const res = await fetch("/api/v1/deployments", { headers: key ? { authorization: `Bearer ${key}` } : {} });
  if (res.status === 401) return false;
  if (!res.ok) throw await errorOf(res);
  return true;
}

/** The `/connect` WebSocket of an instance; `afterSeq` replays what came after it first. */
export function connectUrl(instanceId: string, afterSeq: number | undefined): string {
  const url = new URL(`/api/v1/instances/${encodeURIComponent(instanceId)}/connect`, location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  const key = storedKey();
  if (key) url.searchParams.set("api_key", key);
  if (afterSeq !== undefined) url.searchParams.set("after_seq", String(afterSeq));
  return url.toString();
}

export function describeError(err: unknown): string {
  if (err instanceof ApiError) return `${err.status} ${err.code}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

export function isObject(value: Json | undefined): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
