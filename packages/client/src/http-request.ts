/**
 * One HTTP exchange with Podium over the global fetch: auth header, JSON body, a timeout combined
 * with the caller's AbortSignal. Network failures, timeouts and aborts become PodiumConnectionError;
 * any status comes back to the caller, who decides what it means (`httpError` builds the error).
 */
import { PodiumConnectionError, abortedError } from "./podium-connection-error.js";

export interface HttpRequest {
  method: "GET" | "POST" | "DELETE";
  /** Absolute URL. */
  url: string;
  apiKey: string | undefined;
  timeoutMs: number;
  body?: unknown;
  signal?: AbortSignal | undefined;
  /** For error messages: "createInstance", "readFile", ... */
  what: string;
}

export interface HttpResponse {
  status: number;
  ok: boolean;
  /** The parsed JSON body; undefined when empty or not JSON. */
  json: unknown;
}

export async function httpRequest(request: HttpRequest): Promise<HttpResponse> {
  const { signal, what } = request;
  if (signal?.aborted) throw abortedError(signal, what);
  const timeout = AbortSignal.timeout(request.timeoutMs);
  const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
  const headers: Record<string, string> = { accept: "application/json" };
  if (request.apiKey) headers.authorization = `Bearer ${request.apiKey}`;
  const init: RequestInit = { method: request.method, headers, signal: combined };
  if (request.body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(request.body);
  }
  try {
    const response = await fetch(request.url, init);
    const text = await response.text();
    return { status: response.status, ok: response.ok, json: parseJson(text) };
  } catch (error) {
    if (signal?.aborted) throw abortedError(signal, what);
    if (timeout.aborted) {
      throw new PodiumConnectionError(`${what}: no answer from ${request.url} within ${request.timeoutMs} ms`, { kind: "timeout", cause: error });
    }
    throw new PodiumConnectionError(`${what}: ${request.method} ${request.url} failed: ${describeError(error)}`, { kind: "network", cause: error });
  }
}

function parseJson(text: string): unknown {
  if (text.length === 0) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause;
  if (cause instanceof Error) {
    const code = (cause as Error & { code?: unknown }).code;
    return typeof code === "string" ? `${error.message} (${code})` : `${error.message} (${cause.message})`;
  }
  return error.message;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A non-2xx answer as a PodiumConnectionError, with the server's `{error:{code,message}}` when present. */
export function httpError(what: string, response: HttpResponse): PodiumConnectionError {
  const body = response.json;
  const error = isRecord(body) && isRecord(body.error) ? body.error : undefined;
  const code = typeof error?.code === "string" ? error.code : undefined;
  const message = typeof error?.message === "string" ? error.message : undefined;
  return new PodiumConnectionError(`${what} failed with HTTP ${response.status}${message ? `: ${message}` : ""}`, {
    kind: "http",
    status: response.status,
    ...(code !== undefined ? { code } : {}),
  });
}

export function protocolError(what: string, detail: string): PodiumConnectionError {
  return new PodiumConnectionError(`${what}: unexpected response: ${detail}`, { kind: "protocol" });
}
