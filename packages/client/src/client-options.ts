/**
 * PodiumClient options: everything optional, defaults from the platform-services contract.
 * `compileClientOptions()` fills the defaults (reading PODIUM_URL / PODIUM_API_KEY from the
 * environment, the only place this package reads it) and validates once; the rest of the client
 * reads `CompiledClientOptions` only. Invalid options throw TypeError / RangeError.
 */
import { setTimeout as sleepFor } from "node:timers/promises";

export interface BreakerOptions {
  /** Consecutive createInstance failures that open the breaker. Default 5. */
  failureThreshold?: number;
  /** How long the breaker stays open before one trial call is let through (half-open). Default 30000. */
  cooldownMs?: number;
}

export interface RetryOptions {
  /** Delay before retry 1, 2, 3, ...; the last one repeats if maxRetries exceeds the list. Default [500, 1000, 2000, 4000]. */
  delaysMs?: readonly number[];
  /** Retries after the first attempt. Default 3. */
  maxRetries?: number;
  /** Multiply each delay by a random factor in [0.8, 1.2). Default true. */
  jitter?: boolean;
}

export interface PodiumClientOptions {
  /** Base URL of the Podium gateway, e.g. "http://localhost:8080". Default: env PODIUM_URL. */
  url?: string;
  /** Sent as `Authorization: Bearer <apiKey>`. Default: env PODIUM_API_KEY (none when unset). */
  apiKey?: string;
  breaker?: BreakerOptions;
  retry?: RetryOptions;
  /** isAlive probe timeout. Default 5000. */
  isAliveTimeoutMs?: number;
  /** Timeout of each file API call. Default 15000. */
  fileTimeoutMs?: number;
  /** Timeout of one createInstance attempt (the server answers once the agent is ready). Default 60000. */
  createTimeoutMs?: number;
  /** Timeout of one stopInstance attempt. Default 30000. */
  stopTimeoutMs?: number;
  /** WebSocket handshake timeout for connect(). Default 15000. */
  connectTimeoutMs?: number;
  /** Timeout of the other instance calls (getInstance, postMessage, cancelTurn, answer, listMessages, ...). Default 15000. */
  requestTimeoutMs?: number;
  /** Waits between retries; inject a fake in tests. Must reject when `signal` aborts. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Source of jitter, in [0, 1). Default Math.random. */
  random?: () => number;
}

export interface CompiledClientOptions {
  /** Normalised: http(s) scheme, no trailing slash. */
  url: string;
  apiKey: string | undefined;
  breaker: { failureThreshold: number; cooldownMs: number };
  retry: { delaysMs: readonly number[]; maxRetries: number; jitter: boolean };
  isAliveTimeoutMs: number;
  fileTimeoutMs: number;
  createTimeoutMs: number;
  stopTimeoutMs: number;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  random: () => number;
}

export const DEFAULT_RETRY_DELAYS_MS: readonly number[] = Object.freeze([500, 1000, 2000, 4000]);

export type Env = Readonly<Record<string, string | undefined>>;

function defaultSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return sleepFor(ms, undefined, signal ? { signal } : undefined);
}

function positiveMs(value: number | undefined, fallback: number, name: string): number {
  const ms = value ?? fallback;
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms <= 0) throw new RangeError(`${name} must be a positive number of milliseconds, got ${String(value)}`);
  return ms;
}

function integerAtLeast(value: number | undefined, fallback: number, min: number, name: string): number {
  const n = value ?? fallback;
  if (!Number.isSafeInteger(n) || n < min) throw new RangeError(`${name} must be an integer >= ${min}, got ${String(value)}`);
  return n;
}

/** "localhost:8080" -> "http://localhost:8080"; ws(s) -> http(s); trailing slashes dropped. */
export function normalizeBaseUrl(raw: string): string {
  const trimmed = raw.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed) ? trimmed : `http://${trimmed}`;
  let parsed: URL;
  try {
    parsed = new URL(withScheme);
  } catch {
    throw new TypeError(`url is not a valid URL: "${raw}"`);
  }
  if (parsed.protocol === "ws:") parsed.protocol = "http:";
  else if (parsed.protocol === "wss:") parsed.protocol = "https:";
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new TypeError(`url must be http(s), got "${raw}"`);
  if (parsed.search || parsed.hash) throw new TypeError(`url must not have a query or fragment: "${raw}"`);
  return parsed.toString().replace(/\/+$/, "");
}

export function compileClientOptions(options: PodiumClientOptions = {}, env: Env = process.env): CompiledClientOptions {
  const rawUrl = options.url ?? env.PODIUM_URL;
  if (!rawUrl) throw new TypeError("PodiumClient needs a url (options.url or PODIUM_URL)");
  const apiKey = options.apiKey ?? (env.PODIUM_API_KEY || undefined);
  const delaysMs = options.retry?.delaysMs ?? DEFAULT_RETRY_DELAYS_MS;
  if (delaysMs.length === 0 || delaysMs.some((d) => typeof d !== "number" || !Number.isFinite(d) || d < 0)) {
    throw new RangeError("retry.delaysMs must be a non-empty list of non-negative numbers");
  }
  return {
    url: normalizeBaseUrl(rawUrl),
    apiKey: apiKey || undefined,
    breaker: {
      failureThreshold: integerAtLeast(options.breaker?.failureThreshold, 5, 1, "breaker.failureThreshold"),
      cooldownMs: positiveMs(options.breaker?.cooldownMs, 30_000, "breaker.cooldownMs"),
    },
    retry: {
      delaysMs: Object.freeze([...delaysMs]),
      maxRetries: integerAtLeast(options.retry?.maxRetries, 3, 0, "retry.maxRetries"),
      jitter: options.retry?.jitter ?? true,
    },
    isAliveTimeoutMs: positiveMs(options.isAliveTimeoutMs, 5_000, "isAliveTimeoutMs"),
    fileTimeoutMs: positiveMs(options.fileTimeoutMs, 15_000, "fileTimeoutMs"),
    createTimeoutMs: positiveMs(options.createTimeoutMs, 60_000, "createTimeoutMs"),
    stopTimeoutMs: positiveMs(options.stopTimeoutMs, 30_000, "stopTimeoutMs"),
    connectTimeoutMs: positiveMs(options.connectTimeoutMs, 15_000, "connectTimeoutMs"),
    requestTimeoutMs: positiveMs(options.requestTimeoutMs, 15_000, "requestTimeoutMs"),
    sleep: options.sleep ?? defaultSleep,
    random: options.random ?? Math.random,
  };
}
