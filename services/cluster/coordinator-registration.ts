/**
 * Coordinator side of service discovery. Every `heartbeatMs` the coordinator rewrites
 * `<prefix>coordinator:<id>` (its address and load) with a TTL of `ttlMs`, so a coordinator that dies
 * disappears by itself; it publishes join / update (draining or full changed) / leave on the
 * membership channel so gateways react at once. It also keeps the instance -> coordinator and
 * agent -> coordinator mappings that let any gateway route any request.
 *
 * Valkey being down never throws out of here: heartbeats log once and retry, writes that failed are
 * retried by the next heartbeat, and when the heartbeat finds its key gone (TTL expired, or Valkey
 * restarted empty) it rewrites every mapping of its live instances. Layout: docs/cluster.md.
 */
import type { Redis } from "ioredis";
import { HeartbeatKeeper } from "./heartbeat-keeper.js";
import { ClusterKeys, assertClusterId, parseHeartbeat, type CoordinatorHeartbeat, type CoordinatorLoad, type MembershipEvent } from "./cluster-keys.js";
import { closeValkey, ownValkey, pipelineResults, valkeyCall, watchValkeyConnection, type ValkeyClientOptions } from "./valkey-client.js";
import { errorMessage } from "../shared/errors.js";
import { silentLogger, type Logger } from "../shared/logger.js";
import { PODIUM_VERSION } from "../shared/version.js";

export interface CoordinatorRegistrationOptions {
  /** A connection (the caller closes it) or a URL (this registration opens and closes its own). */
  redis: Redis | string;
  coordinatorId: string;
  /** Where gateways reach this coordinator; a function when it is known only after listen(). */
  address: string | (() => string);
  /** Current load; called on every heartbeat. */
  info: () => CoordinatorLoad;
  /**
   * Optional: the live instances, called on every heartbeat. When given, the mappings follow it
   * (new ones recorded, vanished ones forgotten with `endedRetentionMs`) without explicit calls.
   */
  liveInstances?: () => Iterable<{ instanceId: string; agentId: string }>;
  /** Default 1000. */
  heartbeatMs?: number;
  /** TTL of the heartbeat key; must exceed heartbeatMs. Default 3000. */
  ttlMs?: number;
  /** Default "podium:". */
  keyPrefix?: string;
  /** How long mappings of ended instances stay readable (GET shows them as ended). Default 10 min. */
  endedRetentionMs?: number;
  startedAt?: number;
  version?: string;
  logger?: Logger;
  /** Connection tuning when `redis` is a URL. */
  valkey?: ValkeyClientOptions;
  /**
   * A worker thread extends the heartbeat key's TTL every `heartbeatMs` while the main thread's event loop
   * has run within this many ms (heartbeat-keeper.ts), so long synchronous work (a burst of agent spawns)
   * never lets the key expire. 0 turns it off. Default 10000.
   */
  keepAliveStallLimitMs?: number;
}

interface CompiledRegistrationOptions {
  coordinatorId: string;
  address: () => string;
  info: () => CoordinatorLoad;
  liveInstances: (() => Iterable<{ instanceId: string; agentId: string }>) | undefined;
  heartbeatMs: number;
  ttlMs: number;
  endedRetentionMs: number;
  startedAt: number;
  version: string;
  logger: Logger;
  keepAliveStallLimitMs: number;
}

function positiveInt(value: number | undefined, fallback: number, name: string): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`${name} must be a positive integer (got ${v})`);
  return v;
}

export function compileRegistrationOptions(options: CoordinatorRegistrationOptions): CompiledRegistrationOptions {
  assertClusterId(options.coordinatorId, "coordinatorId");
  const heartbeatMs = positiveInt(options.heartbeatMs, 1000, "heartbeatMs");
  const ttlMs = positiveInt(options.ttlMs, 3000, "ttlMs");
  if (ttlMs <= heartbeatMs) throw new RangeError(`ttlMs (${ttlMs}) must be greater than heartbeatMs (${heartbeatMs}); 3x is a good choice`);
  const address = options.address;
  return {
    coordinatorId: options.coordinatorId,
    address: typeof address === "function" ? address : () => address,
    info: options.info,
    liveInstances: options.liveInstances,
    heartbeatMs,
    ttlMs,
    endedRetentionMs: positiveInt(options.endedRetentionMs, 10 * 60_000, "endedRetentionMs"),
    startedAt: options.startedAt ?? Date.now(),
    version: options.version ?? PODIUM_VERSION,
    logger: (options.logger ?? silentLogger).child({ coordinator_id: options.coordinatorId }),
    keepAliveStallLimitMs: options.keepAliveStallLimitMs === 0 ? 0 : positiveInt(options.keepAliveStallLimitMs, 10_000, "keepAliveStallLimitMs"),
  };
}

export class CoordinatorRegistration {
  readonly coordinatorId: string;
  private readonly options: CompiledRegistrationOptions;
  private readonly redis: Redis;
  private readonly owned: boolean;
  private readonly keys: ClusterKeys;
  private readonly unwatch: () => void;
  private readonly source: Redis | string;
  private keeper: HeartbeatKeeper | undefined;
  /** instanceId -> agentId of the instances this coordinator hosts. */
  private readonly live = new Map<string, string>();
  /** Writes that have not reached Valkey yet, retried by each heartbeat. */
  private readonly pendingRecord = new Set<string>();
  private readonly pendingForget = new Map<string, number>();
  private published: { draining: boolean; full: boolean } | undefined;
  private chain: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private state: "new" | "running" | "stopped" = "new";
  private failing = false;
  /**
   * A beat failed: its SET may have run (writing our heartbeat into a Valkey restarted empty) although we
   * never saw the answer, so the next beat could not tell the restart. Resync the mappings then anyway.
   */
  private resyncAfterFailure = false;
  private duplicateReported = false;
  private lastBeatOk = 0;
  /** When the next scheduled heartbeat is due (epoch ms); heartbeats keep a fixed rate, not "period after the last one". */
  private nextBeatAt = 0;
  private readonly lag = { beats: 0, lastMs: 0, maxMs: 0 };

  constructor(options: CoordinatorRegistrationOptions) {
    this.options = compileRegistrationOptions(options);
    this.coordinatorId = this.options.coordinatorId;
    this.keys = new ClusterKeys(options.keyPrefix);
    this.source = options.redis;
    ({ redis: this.redis, owned: this.owned } = ownValkey(options.redis, { connectionName: `podium-coordinator-${this.coordinatorId}`, ...options.valkey }));
    this.unwatch = watchValkeyConnection(this.redis, this.options.logger, "registration");
  }

  /** Epoch ms of the last heartbeat Valkey accepted (0: none yet). */
  get lastHeartbeatAt(): number {
    return this.lastBeatOk;
  }

  /**
   * How late scheduled heartbeats started (ms behind their due time at the fixed rate: the event loop was busy,
   * or the previous beat's write was still in flight when this one was due): the last one and the largest
   * since start. Gateways declare a coordinator lost once its key outlives `ttlMs`, so a lag
   * approaching `ttlMs - heartbeatMs` is the warning sign.
   */
  get heartbeatLag(): { beats: number; lastMs: number; maxMs: number } {
    return { ...this.lag };
  }

  /**
   * Registers (first heartbeat) and keeps heartbeating until stop(). Resolves after the first
   * attempt even if Valkey is unreachable then (it is logged, and retried every heartbeatMs).
   */
  async start(): Promise<void> {
    if (this.state !== "new") throw new Error(`registration of ${this.coordinatorId} was already started`);
    if (!this.options.address()) throw new RangeError("address is empty; start the registration after the coordinator listens");
    this.state = "running";
    this.nextBeatAt = Date.now();
    await this.heartbeatNow();
    this.schedule();
    if (this.options.keepAliveStallLimitMs > 0) {
      this.keeper = HeartbeatKeeper.start({
        redis: this.source,
        key: this.keys.coordinator(this.coordinatorId),
        ttlMs: this.options.ttlMs,
        periodMs: this.options.heartbeatMs,
        stallLimitMs: this.options.keepAliveStallLimitMs,
        connectionName: `podium-coordinator-${this.coordinatorId}-keepalive`,
      });
      if (!this.keeper) this.options.logger.warn("the Valkey connection's options cannot be handed to a worker thread: heartbeats run on the main thread only");
    }
  }

  /** Keep-alives the worker thread made (heartbeat-keeper.ts); 0 without one. */
  get keepAlives(): number {
    return this.keeper?.keepAlives ?? 0;
  }

  /** A heartbeat now (e.g. right after draining starts) instead of at the next tick. */
  heartbeatNow(): Promise<void> {
    this.chain = this.chain.then(() => this.beat());
    return this.chain;
  }

  /** Maps instance -> this coordinator and agent -> this coordinator. Never throws; retried until written. */
  async recordInstance(instanceId: string, agentId: string): Promise<void> {
    assertClusterId(instanceId, "instanceId");
    assertClusterId(agentId, "agentId");
    this.live.set(instanceId, agentId);
    this.pendingForget.delete(instanceId);
    this.pendingRecord.add(instanceId);
    if (this.state === "running") await this.flushPending().catch((error: unknown) => this.logWriteFailure("record instance", error));
  }

  /** The instance ended: its mapping stays readable for `retentionMs`, then expires. Never throws. */
  async forgetInstance(instanceId: string, retentionMs: number = this.options.endedRetentionMs): Promise<void> {
    this.live.delete(instanceId);
    this.pendingRecord.delete(instanceId);
    this.pendingForget.set(instanceId, Math.max(1, Math.floor(retentionMs)));
    if (this.state === "running") await this.flushPending().catch((error: unknown) => this.logWriteFailure("forget instance", error));
  }

  /** Deregisters: deletes the heartbeat key and publishes `leave`. Live instance mappings get the ended retention. */
  async stop(): Promise<void> {
    if (this.state === "stopped") return;
    const wasRunning = this.state === "running";
    this.state = "stopped";
    clearTimeout(this.timer);
    await this.keeper?.close(); // before the key is deleted: nothing extends it afterwards
    await this.chain;
    if (wasRunning) {
      this.reconcile();
      for (const id of this.live.keys()) this.pendingForget.set(id, this.options.endedRetentionMs);
      this.live.clear();
      this.pendingRecord.clear();
      const leave: MembershipEvent = { type: "leave", coordinatorId: this.coordinatorId };
      try {
        await valkeyCall(this.redis, "deregister", async () => {
          const multi = this.redis.multi().del(this.keys.coordinator(this.coordinatorId)).srem(this.keys.coordinators, this.coordinatorId);
          this.addForgets(multi);
          multi.publish(this.keys.membershipChannel, JSON.stringify(leave));
          pipelineResults(await multi.exec());
        });
        this.options.logger.info("deregistered from service discovery");
      } catch (error) {
        this.options.logger.warn(`deregistration failed; the heartbeat key expires within ${this.options.ttlMs} ms`, { error: errorMessage(error) });
      }
    }
    this.unwatch();
    if (this.owned) await closeValkey(this.redis);
  }

  /** The next heartbeat at a fixed rate: due `heartbeatMs` after the previous one was due, at once when overdue. */
  private schedule(): void {
    if (this.state !== "running") return;
    const now = Date.now();
    // When the rate says it was due: a beat whose write was in flight through a busy loop schedules this one late.
    const due = this.nextBeatAt + this.options.heartbeatMs;
    this.nextBeatAt = Math.max(due, now);
    this.timer = setTimeout(() => {
      const late = Math.max(0, Date.now() - due);
      this.lag.beats++;
      this.lag.lastMs = late;
      if (late > this.lag.maxMs) this.lag.maxMs = late;
      if (late >= this.options.heartbeatMs)
        this.options.logger.warn(`a heartbeat started ${late} ms late: the event loop was busy (or the previous beat was slow)`, { lag_ms: late, ttl_ms: this.options.ttlMs });
      void this.heartbeatNow().finally(() => this.schedule());
    }, this.nextBeatAt - now);
    this.timer.unref();
  }

  private snapshot(): CoordinatorHeartbeat {
    const load = this.options.info();
    return {
      coordinatorId: this.coordinatorId,
      address: this.options.address(),
      instances: load.instances,
      capacity: load.capacity,
      cpuLoad: load.cpuLoad,
      memoryBytes: load.memoryBytes,
      draining: load.draining,
      ...(load.replicated ? { replicated: true } : {}),
      startedAt: this.options.startedAt,
      version: this.options.version,
      heartbeatAt: Date.now(),
      ttlMs: this.options.ttlMs,
    };
  }

  private async beat(): Promise<void> {
    if (this.state !== "running") return;
    try {
      this.reconcile();
      const info = this.snapshot();
      const previousText = await valkeyCall(this.redis, "heartbeat", async () => {
        const multi = this.redis.multi().set(this.keys.coordinator(this.coordinatorId), JSON.stringify(info), "PX", this.options.ttlMs, "GET").sadd(this.keys.coordinators, this.coordinatorId);
        return pipelineResults(await multi.exec())[0];
      });
      const previous = parseHeartbeat(typeof previousText === "string" ? previousText : undefined);
      // Absent (first start, TTL expired, Valkey restarted empty) or written by an earlier process with this id.
      const joined = !previous || previous.startedAt !== info.startedAt || previous.address !== info.address;
      if (joined && previous && !this.published) {
        this.options.logger.warn("took over the heartbeat key of an earlier process with this coordinator id (a restart; if not, two coordinators share this id)", {
          previous_address: previous.address,
          previous_started_at: previous.startedAt,
        });
      } else if (joined && previous && !this.duplicateReported) {
        this.duplicateReported = true;
        this.options.logger.error("another process is heartbeating with this coordinator id; give every coordinator its own id", { other_address: previous.address });
      }
      if (joined || this.resyncAfterFailure) await this.resync();
      this.resyncAfterFailure = false;
      await this.flushPending();
      const status = { draining: info.draining, full: info.instances >= info.capacity };
      if (joined || status.draining !== this.published?.draining || status.full !== this.published.full) {
        const event: MembershipEvent = { type: joined ? "join" : "update", coordinatorId: this.coordinatorId, info };
        await valkeyCall(this.redis, "publish membership", () => this.redis.publish(this.keys.membershipChannel, JSON.stringify(event)));
        this.published = status;
      }
      this.lastBeatOk = Date.now();
      if (joined) this.options.logger.info(previous ? "re-registered in service discovery" : "registered in service discovery", { address: info.address });
      if (this.failing) {
        this.failing = false;
        this.options.logger.info("heartbeats restored");
      }
    } catch (error) {
      this.resyncAfterFailure = true;
      if (!this.failing) {
        this.failing = true;
        this.options.logger.warn(`heartbeat failed; retrying every ${this.options.heartbeatMs} ms`, { error: errorMessage(error) });
      }
    }
  }

  /** Follows `liveInstances()` when given: records new instances, forgets vanished ones. */
  private reconcile(): void {
    if (!this.options.liveInstances) return;
    const current = new Map<string, string>();
    try {
      for (const { instanceId, agentId } of this.options.liveInstances()) current.set(instanceId, agentId);
    } catch (error) {
      this.options.logger.warn("listing live instances failed", { error: errorMessage(error) });
      return;
    }
    for (const [id, agent] of current) {
      if (this.live.get(id) === agent) continue;
      this.live.set(id, agent);
      this.pendingForget.delete(id);
      this.pendingRecord.add(id);
    }
    for (const id of [...this.live.keys()]) {
      if (current.has(id)) continue;
      this.live.delete(id);
      this.pendingRecord.delete(id);
      this.pendingForget.set(id, this.options.endedRetentionMs);
    }
  }

  /** Rewrites every mapping of the live instances and expires leftovers of an earlier process. */
  private async resync(): Promise<void> {
    const setKey = this.keys.coordinatorInstances(this.coordinatorId);
    const stored = await valkeyCall(this.redis, "resync", () => this.redis.smembers(setKey));
    for (const id of stored) {
      if (!this.live.has(id) && !this.pendingForget.has(id)) this.pendingForget.set(id, this.options.endedRetentionMs);
    }
    for (const id of this.live.keys()) this.pendingRecord.add(id);
  }

  private addForgets(multi: ReturnType<Redis["multi"]>): void {
    const setKey = this.keys.coordinatorInstances(this.coordinatorId);
    for (const [id, retentionMs] of this.pendingForget) multi.pexpire(this.keys.instance(id), retentionMs).srem(setKey, id);
  }

  /** Writes pending records and forgets in one transaction; clears what it wrote. */
  private async flushPending(): Promise<void> {
    if (this.pendingRecord.size === 0 && this.pendingForget.size === 0) return;
    const records = [...this.pendingRecord];
    const forgets = new Map(this.pendingForget);
    await valkeyCall(this.redis, "write instance mappings", async () => {
      const setKey = this.keys.coordinatorInstances(this.coordinatorId);
      const multi = this.redis.multi();
      for (const id of records) {
        const agentId = this.live.get(id);
        if (agentId === undefined) continue;
        multi
          .set(this.keys.instance(id), JSON.stringify({ coordinatorId: this.coordinatorId, agentId }))
          .set(this.keys.agent(agentId), this.coordinatorId)
          .sadd(setKey, id);
      }
      for (const [id, retentionMs] of forgets) multi.pexpire(this.keys.instance(id), retentionMs).srem(setKey, id);
      // A gateway may have given the set a TTL while this coordinator looked dead.
      if (records.length > 0) multi.persist(setKey);
      pipelineResults(await multi.exec());
    });
    for (const id of records) this.pendingRecord.delete(id);
    for (const [id, retentionMs] of forgets) if (this.pendingForget.get(id) === retentionMs) this.pendingForget.delete(id);
  }

  private logWriteFailure(what: string, error: unknown): void {
    if (this.failing) return; // the heartbeat already reported the outage
    this.options.logger.warn(`${what} failed; retrying with the next heartbeat`, { error: errorMessage(error) });
  }
}
