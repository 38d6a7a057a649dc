/**
 * ioredis connections to Valkey (or Redis) tuned for service discovery: commands fail within
 * `commandTimeoutMs` instead of queueing forever while Valkey is down, and the connection reconnects
 * by itself (at most `maxReconnectDelayMs` apart) when it comes back.
 */
import { Redis } from "ioredis";
import { Code, ConnectError } from "@connectrpc/connect";
import { errorMessage } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";

export interface ValkeyClientOptions {
  /** A command without a reply after this long fails (Unavailable). Default 1000. */
  commandTimeoutMs?: number;
  /** TCP connect timeout. Default 2000. */
  connectTimeoutMs?: number;
  /** Reconnect backoff grows 50 ms per attempt up to this. Default 500. */
  maxReconnectDelayMs?: number;
  /** CLIENT SETNAME, to recognise connections in `CLIENT LIST`. */
  connectionName?: string;
}

/** A Valkey connection for `url` ("redis://host:6379/0", "rediss://…" for TLS). The caller closes it (closeValkey). */
export function createValkeyClient(url: string, options: ValkeyClientOptions = {}): Redis {
  const maxDelay = options.maxReconnectDelayMs ?? 500;
  return new Redis(url, {
    commandTimeout: options.commandTimeoutMs ?? 1000,
    connectTimeout: options.connectTimeoutMs ?? 2000,
    // Commands caught by a dropped connection fail at the next reconnect attempt instead of piling up.
    maxRetriesPerRequest: 1,
    // Commands issued while connecting wait (bounded by commandTimeout); see valkeyCall for "reconnecting".
    enableOfflineQueue: true,
    retryStrategy: (attempt: number) => Math.min(attempt * 50, maxDelay),
    // disconnect() arms a timer of this length that is never cleared when the socket is already gone
    // (Valkey down); keep it short so a closed client does not hold the process open.
    disconnectTimeout: 200,
    ...(options.connectionName ? { connectionName: options.connectionName } : {}),
  });
}

/** The connection, and whether this code created it (and so must close it). */
export function ownValkey(redis: Redis | string, options: ValkeyClientOptions = {}): { redis: Redis; owned: boolean } {
  return typeof redis === "string" ? { redis: createValkeyClient(redis, options), owned: true } : { redis, owned: false };
}

/** The URL without credentials, safe to log. */
export function describeValkey(redis: Redis): string {
  const { host, port, db } = redis.options;
  return `${host ?? "localhost"}:${port ?? 6379}${db ? `/${db}` : ""}`;
}

function isReplyError(error: unknown): boolean {
  return error instanceof Error && error.name === "ReplyError";
}

/** Any failure of a Valkey call as a ConnectError: Unavailable unless Valkey answered with an error. */
export function toValkeyError(error: unknown, what: string): ConnectError {
  if (error instanceof ConnectError) return error;
  if (isReplyError(error)) return new ConnectError(`service discovery (Valkey) rejected ${what}: ${errorMessage(error)}`, Code.Internal);
  return new ConnectError(`service discovery (Valkey) is unavailable: ${what} failed (${errorMessage(error)})`, Code.Unavailable);
}

/**
 * Runs one Valkey operation. While the connection is down (reconnecting), fails at once with
 * Unavailable rather than waiting for the command timeout; otherwise maps errors with toValkeyError.
 */
export async function valkeyCall<T>(redis: Redis, what: string, fn: () => Promise<T>): Promise<T> {
  if (redis.status === "reconnecting" || redis.status === "close" || redis.status === "end") {
    throw new ConnectError(`service discovery (Valkey at ${describeValkey(redis)}) is unavailable: ${what} failed (not connected)`, Code.Unavailable);
  }
  try {
    return await fn();
  } catch (error) {
    throw toValkeyError(error, what);
  }
}

/** Results of a pipeline / MULTI: throws the first command error. */
export function pipelineResults(results: [Error | null, unknown][] | null): unknown[] {
  if (!results) throw new Error("transaction aborted");
  return results.map(([error, value]) => {
    if (error) throw error;
    return value;
  });
}

/** Closes a connection: QUIT when connected (bounded), otherwise a plain disconnect. */
export async function closeValkey(redis: Redis): Promise<void> {
  if (redis.status === "end") return;
  redis.on("error", () => undefined); // closing: late socket errors are expected, not news
  if (redis.status === "ready") {
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, 500).unref());
    await Promise.race([
      redis.quit().then(
        () => undefined,
        () => undefined,
      ),
      timeout,
    ]);
  }
  redis.disconnect();
}

/**
 * Logs Valkey connection trouble once per outage (not once per reconnect attempt) and the recovery.
 * Returns a function that removes the listeners.
 */
export function watchValkeyConnection(redis: Redis, logger: Logger, role: string): () => void {
  let down = false;
  const onError = (error: unknown): void => {
    if (down) return;
    down = true;
    logger.warn(`${role}: Valkey connection lost; retrying`, { valkey: describeValkey(redis), error: errorMessage(error) });
  };
  const onClose = (): void => {
    if (!down) onError(new Error("connection closed"));
  };
  const onReady = (): void => {
    if (!down) return;
    down = false;
    logger.info(`${role}: Valkey connection restored`, { valkey: describeValkey(redis) });
  };
  redis.on("error", onError);
  redis.on("close", onClose);
  redis.on("ready", onReady);
  return () => {
    redis.off("error", onError);
    redis.off("close", onClose);
    redis.off("ready", onReady);
  };
}
