/**
 * Keeps a coordinator's heartbeat key alive from a worker thread while the main thread is busy. The main
 * thread spawns agents (fork + exec is synchronous), opens SQLite databases and sets up sandboxes: under a
 * burst of creates on a small host its event loop can stall for seconds, longer than the key's TTL, and the
 * coordinator would be declared lost although it is alive and about to answer. The worker has its own event
 * loop and Valkey connection; every `periodMs` it extends the key's TTL (PEXPIRE: it never creates the key,
 * never changes its content; the main thread's heartbeat stays the only writer and does join/resync).
 *
 * It does so only while the main thread is not hung: the main thread stamps a shared clock every
 * `periodMs / 4`; once the stamp is older than `stallLimitMs` the worker stops extending, so a coordinator
 * whose event loop is stuck for good still disappears from discovery (after `stallLimitMs` + TTL).
 */
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type { Redis } from "ioredis";

/** Plain CommonJS run with `eval: true` (works the same under tsx, jest and compiled output). */
const WORKER_SOURCE = `
const { workerData, parentPort } = require("node:worker_threads");
const mod = require(workerData.ioredisPath);
const Redis = mod.Redis || mod.default || mod;
const { connection, key, ttlMs, periodMs, stallLimitMs, shared } = workerData;
const clock = new BigInt64Array(shared); // [0] main thread's last stamp (epoch ms), [1] keep-alives Valkey accepted
const options = {
  commandTimeout: 1000,
  connectTimeout: 2000,
  maxRetriesPerRequest: 1,
  enableOfflineQueue: false,
  retryStrategy: (attempt) => Math.min(attempt * 50, 500),
  disconnectTimeout: 200,
  connectionName: workerData.connectionName,
};
const redis = connection.url ? new Redis(connection.url, options) : new Redis({ ...connection.fields, ...options });
redis.on("error", () => undefined); // the main thread's heartbeat reports Valkey outages
let stopped = false;
let timer;
async function tick() {
  if (stopped) return;
  const age = Date.now() - Number(Atomics.load(clock, 0));
  if (age <= stallLimitMs && redis.status === "ready") {
    try {
      if ((await redis.pexpire(key, ttlMs)) === 1) Atomics.add(clock, 1, 1n);
    } catch {}
  }
  if (!stopped) timer = setTimeout(tick, periodMs);
}
timer = setTimeout(tick, periodMs);
parentPort.on("message", () => {
  stopped = true;
  clearTimeout(timer);
  redis.disconnect();
  parentPort.close();
});
`;

export interface HeartbeatKeeperOptions {
  /** How the worker reaches Valkey: the URL, or the connection of the main thread (its options are copied). */
  redis: Redis | string;
  key: string;
  ttlMs: number;
  periodMs: number;
  /** The main thread stamped nothing for this long: stop keeping the key alive. */
  stallLimitMs: number;
  connectionName: string;
}

type Connection = { url: string } | { fields: Record<string, unknown> };

/** What of an ioredis connection's options a worker can receive (no functions); undefined when that fails. */
function connectionOf(redis: Redis | string): Connection | undefined {
  if (typeof redis === "string") return { url: redis };
  const { host, port, path, username, password, db, tls, family } = redis.options;
  const fields: Record<string, unknown> = { host, port, path, username, password, db, tls, family };
  try {
    return { fields: structuredClone(fields) };
  } catch {
    return undefined;
  }
}

export class HeartbeatKeeper {
  private readonly worker: Worker;
  private readonly clock: BigInt64Array;
  private readonly stampTimer: NodeJS.Timeout;
  private closed = false;

  /** undefined when the connection cannot be handed to a worker (e.g. TLS options with callbacks). */
  static start(options: HeartbeatKeeperOptions): HeartbeatKeeper | undefined {
    const connection = connectionOf(options.redis);
    return connection ? new HeartbeatKeeper(options, connection) : undefined;
  }

  private constructor(options: HeartbeatKeeperOptions, connection: Connection) {
    const shared = new SharedArrayBuffer(16);
    this.clock = new BigInt64Array(shared);
    this.stamp();
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      // Not the parent's flags: e.g. `--input-type=module` would make this CommonJS source an ES module.
      execArgv: [],
      workerData: {
        ioredisPath: createRequire(import.meta.url).resolve("ioredis"),
        connection,
        key: options.key,
        ttlMs: options.ttlMs,
        periodMs: options.periodMs,
        stallLimitMs: options.stallLimitMs,
        connectionName: options.connectionName,
        shared,
      },
    });
    this.worker.on("error", () => undefined); // only a keep-alive: the main thread's heartbeat carries on
    this.worker.unref();
    this.stampTimer = setInterval(() => this.stamp(), Math.max(50, Math.floor(options.periodMs / 4)));
    this.stampTimer.unref();
  }

  /** Keep-alives Valkey accepted (the key existed and got its TTL extended). */
  get keepAlives(): number {
    return Number(Atomics.load(this.clock, 1));
  }

  /** Stops the worker (before the key is deleted, so nothing extends it after deregistration). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.stampTimer);
    Atomics.store(this.clock, 0, 0n); // stamped "long ago": a tick racing this close does nothing
    const exited = new Promise<void>((resolve) => this.worker.once("exit", () => resolve()));
    this.worker.postMessage("stop");
    const timer = setTimeout(() => void this.worker.terminate(), 1000);
    await exited;
    clearTimeout(timer);
  }

  private stamp(): void {
    Atomics.store(this.clock, 0, BigInt(Date.now()));
  }
}
