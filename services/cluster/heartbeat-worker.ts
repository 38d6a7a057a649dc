/**
 * The heartbeat keeper's thread (heartbeat-keeper.ts): every `periodMs` it extends the coordinator's
 * heartbeat key's TTL (PEXPIRE only: it never creates the key nor changes its content) while the main
 * thread's stamp is younger than `stallLimitMs`. Any message stops it.
 */
import { Redis, type RedisOptions } from "ioredis";
import { parentPort, workerData } from "node:worker_threads";

export interface HeartbeatWorkerData {
  /** The URL, or the main connection's options that a worker can receive. */
  connection: { url: string } | { fields: Record<string, unknown> };
  key: string;
  ttlMs: number;
  periodMs: number;
  stallLimitMs: number;
  connectionName: string;
  /** BigInt64 [0] the main thread's last stamp (epoch ms), [1] keep-alives Valkey accepted. */
  shared: SharedArrayBuffer;
}

const { connection, key, ttlMs, periodMs, stallLimitMs, shared, connectionName } = workerData as HeartbeatWorkerData;
const clock = new BigInt64Array(shared);
const options: RedisOptions = {
  commandTimeout: 1000,
  connectTimeout: 2000,
  maxRetriesPerRequest: 1,
  enableOfflineQueue: false,
  retryStrategy: (attempt: number) => Math.min(attempt * 50, 500),
  disconnectTimeout: 200,
  connectionName,
};
const redis = "url" in connection ? new Redis(connection.url, options) : new Redis({ ...(connection.fields as RedisOptions), ...options });
redis.on("error", () => undefined); // the main thread's heartbeat reports Valkey outages
let stopped = false;
let timer: NodeJS.Timeout | undefined;

async function tick(): Promise<void> {
  if (stopped) return;
  const age = Date.now() - Number(Atomics.load(clock, 0));
  if (age <= stallLimitMs && redis.status === "ready") {
    try {
      if ((await redis.pexpire(key, ttlMs)) === 1) Atomics.add(clock, 1, 1n);
    } catch {
      // the next tick tries again; the main thread's heartbeat reports outages
    }
  }
  if (!stopped) timer = setTimeout(() => void tick(), periodMs);
}

timer = setTimeout(() => void tick(), periodMs);
parentPort?.on("message", () => {
  stopped = true;
  clearTimeout(timer);
  redis.disconnect();
  parentPort?.close();
});
