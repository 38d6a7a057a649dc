/**
 * Single-writer lease of one agent in Valkey: only the coordinator holding `<prefix>agent-lease:<id>`
 * may write the agent's databases.
 *
 *   acquire  SET key token NX PX ttl          (token = "<coordinatorId>:<random>")
 *   renew    every ttl/3, compare-and-extend (Lua): PEXPIRE when the value is our token; SET it
 *            again when the key is gone (Valkey restarted empty) while our own deadline has not passed
 *   release  compare-and-delete (Lua)
 *
 * A Valkey restarted empty has lost every lease while their holders still run the agents; they re-create
 * them at their next renew (within ttl/3), or, unable to renew, fence themselves at their deadline (within
 * ttl). Until then an absent key proves nothing, so `acquire`, once it saw Valkey's run_id change, takes
 * no lease while Valkey has been up for less than ttl (INFO server): it waits, then finds the lease
 * re-created by its live holder, or absent because there is none. The run_id a process compares with is
 * the one it saw when it connected (rememberValkeyRun); one that connects to a Valkey restarted less than
 * ttl before cannot tell it from a new one. A holder that re-created its lease reports it (`onRecreated`),
 * so that what else the restart lost (the last-writer key) is written again.
 *
 * Fencing: the holder computes its own deadline as (start of the last successful renew) + ttl on the
 * monotonic clock. Valkey's expiry is later than that (its TTL starts when the command arrives), so
 * the holder stops believing it holds the lease before anyone else can get it. `holds()` checks that
 * deadline synchronously; callers check it before every write. When a renew finds another owner, or
 * the deadline passes without a successful renew (Valkey unreachable, event loop or process paused),
 * `onLost` is called once. See docs/replication.md for the timings.
 */
import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { Code, ConnectError } from "@connectrpc/connect";
import { DEFAULT_KEY_PREFIX } from "../cluster/cluster-keys.js";
import { toValkeyError } from "../cluster/valkey-client.js";
import { errorMessage } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";

export const DEFAULT_LEASE_TTL_MS = 5000;

const EXTEND = `
local value = redis.call("GET", KEYS[1])
if value == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end
if value == false then redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2]) return 2 end
return 0`;
const RELEASE = `
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end
return 0`;

export interface AgentLeaseOptions {
  redis: Redis;
  agentId: string;
  /** The coordinator id: part of the token, so `GET` on the key shows the holder. */
  owner: string;
  /** Default 5000. Failover waits up to this long for a dead holder's lease to expire. */
  ttlMs?: number;
  keyPrefix?: string;
  /**
   * Called once, promptly, when the lease is lost; the caller stops the agent. `takenOver`: another owner
   * holds it now; false: it lapsed (not renewed in time, e.g. Valkey away), and may still be free.
   */
  onLost: (agentId: string, reason: string, takenOver: boolean) => void;
  /** Called when a renew found the key gone (Valkey restarted empty) and set it again. */
  onRecreated?: (agentId: string) => void;
  logger: Logger;
}

export interface AcquireOptions {
  /** Wait this long for a lease held by another coordinator to expire. Default ttl + 1000. */
  waitMs?: number;
  signal?: AbortSignal;
}

export function leaseKey(agentId: string, keyPrefix = DEFAULT_KEY_PREFIX): string {
  return `${keyPrefix}agent-lease:${agentId}`;
}

function holderOf(value: string | null): string {
  return value ? value.slice(0, value.lastIndexOf(":")) : "nobody";
}

/** Valkey's run_id (a new one at every start) and uptime (whole seconds, rounded down, in ms). */
export async function valkeyRun(redis: Redis): Promise<{ runId: string; uptimeMs: number }> {
  const info = await redis.info("server");
  const uptime = /^uptime_in_seconds:(\d+)/m.exec(info);
  return { runId: /^run_id:(\w+)/m.exec(info)?.[1] ?? "", uptimeMs: uptime ? Number(uptime[1]) * 1000 : Infinity };
}

/** The run_id each connection saw first: a different one later means Valkey restarted while this process ran. */
const firstRunIds = new WeakMap<Redis, Promise<string>>();

/**
 * Remembers the run_id of the Valkey `redis` is connected to, now: call when the connection is created,
 * so that a Valkey restarted before this process's first acquire is still told from a new one.
 */
export function rememberValkeyRun(redis: Redis): void {
  if (firstRunIds.has(redis)) return;
  // A command fails while the connection is down (one retry per request): then read it once it is ready.
  const seen = new Promise<string>((resolve) => {
    const read = (): void =>
      void valkeyRun(redis).then(
        (run) => resolve(run.runId),
        () => redis.once("ready", read),
      );
    if (redis.status === "ready") read();
    else redis.once("ready", read);
  });
  firstRunIds.set(redis, seen);
}

/**
 * Resolves at once, unless Valkey restarted since this connection first saw it and has been up for less
 * than `minMs`: then once it has (see the module comment).
 */
async function waitAfterValkeyRestart(redis: Redis, minMs: number, agentId: string, signal: AbortSignal | undefined): Promise<void> {
  for (;;) {
    signal?.throwIfAborted();
    let run: { runId: string; uptimeMs: number };
    try {
      run = await valkeyRun(redis);
    } catch (err) {
      throw toValkeyError(err, `acquire the lease of agent ${agentId}`);
    }
    // Remembered at connect; it is known by now, unless the connection came up just for this call.
    const remembered = firstRunIds.get(redis);
    let first = remembered && (await Promise.race([remembered, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 1000).unref())]));
    if (first === undefined) {
      firstRunIds.set(redis, Promise.resolve(run.runId));
      first = run.runId;
    }
    // Uptime is rounded down to whole seconds: minMs + 1 s of it is at least minMs.
    if (first === run.runId || run.uptimeMs >= minMs + 1000) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

export class AgentLease {
  private deadline: number;
  private timer: NodeJS.Timeout | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private renewing = false;
  private lost = false;
  private released = false;

  private constructor(
    private readonly options: AgentLeaseOptions,
    readonly key: string,
    readonly token: string,
    readonly ttlMs: number,
    acquiredAt: number,
  ) {
    this.deadline = acquiredAt + ttlMs;
    this.schedule();
  }

  /**
   * Takes the lease. While another coordinator holds it, retries until it expires (a dead holder) or
   * `waitMs` passes; a holder that keeps renewing is alive: AlreadyExists at once. Valkey down: Unavailable
   * at once; Valkey lost while waiting for a holder (a restart): retried until `waitMs`.
   */
  static async acquire(options: AgentLeaseOptions, acquire: AcquireOptions = {}): Promise<AgentLease> {
    const ttlMs = options.ttlMs ?? DEFAULT_LEASE_TTL_MS;
    const key = leaseKey(options.agentId, options.keyPrefix);
    const token = `${options.owner}:${randomUUID()}`;
    const waitUntil = performance.now() + (acquire.waitMs ?? ttlMs + 1000);
    let lastTtl = Infinity;
    for (let attempt = 0; ; attempt++) {
      acquire.signal?.throwIfAborted();
      let startedAt = performance.now();
      let ok: string | null;
      let holder: string | null = null;
      let ttl = -2;
      try {
        // Before every attempt: Valkey may restart while this loop waits for a holder's lease to expire.
        await waitAfterValkeyRestart(options.redis, ttlMs, options.agentId, acquire.signal);
        startedAt = performance.now();
        ok = await options.redis.set(key, token, "PX", ttlMs, "NX");
        if (ok !== "OK") [holder, ttl] = await Promise.all([options.redis.get(key), options.redis.pttl(key)]);
      } catch (err) {
        if (attempt === 0 || performance.now() >= waitUntil || acquire.signal?.aborted) throw toValkeyError(err, `acquire the lease of agent ${options.agentId}`);
        await new Promise((resolve) => setTimeout(resolve, 250));
        continue;
      }
      if (ok === "OK") return new AgentLease(options, key, token, ttlMs, startedAt);
      // The holder renewed since the last look (its TTL went up): it is alive.
      if (ttl > lastTtl + 50 || performance.now() >= waitUntil) {
        throw new ConnectError(
          `agent ${options.agentId} is held by coordinator ${holderOf(holder)}: live there, or still uploading its last writes to S3 (its lease expires in ${Math.max(ttl, 0)} ms unless renewed); stop it there first, or retry`,
          Code.AlreadyExists,
        );
      }
      lastTtl = ttl;
      await new Promise((resolve) => setTimeout(resolve, Math.min(250, Math.max(ttl, 10))));
    }
  }

  /** True while this process may write the agent's data (monotonic-clock check, no I/O). */
  holds(): boolean {
    return !this.lost && !this.released && performance.now() < this.deadline;
  }

  /** When the lease runs out unless renewed (performance.now() time base). */
  get deadlineAt(): number {
    return this.deadline;
  }

  /** Gives the lease up (compare-and-delete); stops renewing. Idempotent; never throws. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.stopTimers();
    if (this.lost) return;
    try {
      await this.options.redis.eval(RELEASE, 1, this.key, this.token);
    } catch (err) {
      // It expires by itself within ttl.
      this.options.logger.warn("cannot release agent lease", { agent_id: this.options.agentId, error: errorMessage(err) });
    }
  }

  private schedule(): void {
    this.timer = setInterval(() => void this.renew(), Math.max(10, Math.floor(this.ttlMs / 3)));
    this.timer.unref();
    this.armDeadline();
  }

  private armDeadline(): void {
    clearTimeout(this.deadlineTimer);
    this.deadlineTimer = setTimeout(() => this.checkDeadline(), Math.max(0, this.deadline - performance.now()) + 1);
    this.deadlineTimer.unref();
  }

  private checkDeadline(): boolean {
    if (this.lost || this.released) return false;
    if (performance.now() < this.deadline) return true;
    this.lose(`not renewed within ${this.ttlMs} ms`);
    return false;
  }

  private async renew(): Promise<void> {
    if (this.renewing || !this.checkDeadline()) return;
    this.renewing = true;
    const startedAt = performance.now();
    try {
      const result = await this.options.redis.eval(EXTEND, 1, this.key, this.token, String(this.ttlMs));
      if (this.lost || this.released) return;
      if (result === 0) {
        const holder = await this.options.redis.get(this.key).catch(() => null);
        this.lose(`taken over by coordinator ${holderOf(holder)}`, true);
        return;
      }
      if (!this.checkDeadline()) return; // the answer came too late to count
      this.deadline = startedAt + this.ttlMs;
      this.armDeadline();
      if (result === 2) {
        this.options.logger.warn("agent lease was missing in Valkey; re-created", { agent_id: this.options.agentId });
        this.options.onRecreated?.(this.options.agentId);
      }
    } catch (err) {
      // Keep trying until the deadline; the deadline timer reports the loss.
      this.options.logger.debug("agent lease renew failed", { agent_id: this.options.agentId, error: errorMessage(err) });
    } finally {
      this.renewing = false;
    }
  }

  private lose(reason: string, takenOver = false): void {
    if (this.lost || this.released) return;
    this.lost = true;
    this.stopTimers();
    this.options.logger.warn("agent lease lost; fencing the agent", { agent_id: this.options.agentId, reason });
    this.options.onLost(this.options.agentId, reason, takenOver);
  }

  private stopTimers(): void {
    clearInterval(this.timer);
    clearTimeout(this.deadlineTimer);
  }
}
