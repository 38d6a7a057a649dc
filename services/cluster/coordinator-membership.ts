/**
 * A gateway's live view of the registered coordinators: the membership channel (SUBSCRIBE on its own
 * connection) for immediate join / update / leave, plus a periodic refresh (SMEMBERS + MGET of the
 * heartbeat keys) that catches what pub/sub cannot: expired heartbeats (a coordinator that died) and
 * messages missed while disconnected.
 *
 * While Valkey is unreachable the view is frozen and `healthy` is false; nothing is declared lost.
 * For `reconnectGraceMs` after Valkey comes back (possibly restarted empty) absent coordinators are
 * not declared lost either, so they have time to heartbeat again. "Comes back" is either a refresh
 * that succeeds after one failed, or a connection of this view that closed: a Valkey restarted faster
 * than one refresh period fails no refresh, yet its keys are gone.
 */
import type { Redis } from "ioredis";
import { parseHeartbeat, parseMembershipEvent, type ClusterKeys, type CoordinatorHeartbeat } from "./cluster-keys.js";
import { pruneCoordinators } from "./cluster-scripts.js";
import { closeValkey, valkeyCall, watchValkeyConnection } from "./valkey-client.js";
import { errorMessage } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";

export interface CoordinatorMember extends CoordinatorHeartbeat {
  /** Local epoch ms the member was last confirmed present (refresh or pub/sub). */
  seenAt: number;
  /** Instances placed here by this gateway since the last heartbeat (not yet in `instances`). */
  pending: number;
}

/** Why a coordinator left the view: clean deregistration, heartbeat expiry, or a new process with its id. */
export type CoordinatorLostReason = "left" | "expired" | "restarted";

export interface MembershipListener {
  joined(member: CoordinatorMember): void;
  changed(member: CoordinatorMember): void;
  lost(coordinatorId: string, reason: CoordinatorLostReason): void;
}

export interface CoordinatorMembershipOptions {
  refreshMs: number;
  reconnectGraceMs: number;
  logger: Logger;
}

const TOMBSTONE_MS = 60_000;

export class CoordinatorMembership {
  private readonly byId = new Map<string, CoordinatorMember>();
  /** coordinatorId -> local time its `leave` arrived, so an older refresh cannot resurrect it. */
  private readonly tombstones = new Map<string, number>();
  private readonly subscriber: Redis;
  private readonly unwatch: () => void;
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  private healthyNow = false;
  /** Set once the first refresh succeeds: the reconnect grace applies to recoveries, not to start-up. */
  private everHealthy = false;
  private graceUntil = 0;
  /** Local time one of this view's connections last closed (after the first healthy refresh). */
  private disconnectedAt = -Infinity;
  private readonly onClose = () => {
    if (this.everHealthy) this.disconnectedAt = Date.now();
  };
  private closed = false;
  readonly ready: Promise<void>;

  constructor(
    private readonly redis: Redis,
    private readonly keys: ClusterKeys,
    private readonly listener: MembershipListener,
    private readonly options: CoordinatorMembershipOptions,
  ) {
    this.unwatch = watchValkeyConnection(redis, options.logger, "directory");
    this.subscriber = redis.duplicate({ connectionName: "podium-gateway-membership", disconnectTimeout: 200 });
    this.subscriber.on("error", () => undefined); // reported through the main connection's watcher
    redis.on("close", this.onClose);
    this.subscriber.on("close", this.onClose);
    this.subscriber.on("message", (channel: string, message: string) => {
      if (channel === keys.membershipChannel) this.onMessage(message);
    });
    // On every (re)connect: (re)subscribe (idempotent), then refresh to catch what was missed meanwhile.
    this.subscriber.on("ready", () => {
      this.subscriber.subscribe(keys.membershipChannel).catch((error: unknown) => {
        options.logger.warn("membership subscription failed; relying on periodic refresh", { error: errorMessage(error) });
      });
      void this.refresh();
    });
    this.ready = this.refresh();
    this.timer = setInterval(() => void this.refresh(), options.refreshMs);
    this.timer.unref();
  }

  /** False while Valkey is unreachable (the last refresh failed). */
  get healthy(): boolean {
    return this.healthyNow;
  }

  members(): CoordinatorMember[] {
    return [...this.byId.values()];
  }

  get(coordinatorId: string): CoordinatorMember | undefined {
    return this.byId.get(coordinatorId);
  }

  /** Reads one coordinator's heartbeat key directly (for ids this view has not seen yet). */
  async fetch(coordinatorId: string): Promise<CoordinatorMember | undefined> {
    const observedAt = Date.now();
    const text = await valkeyCall(this.redis, "read coordinator", () => this.redis.get(this.keys.coordinator(coordinatorId)));
    const heartbeat = parseHeartbeat(text);
    if (!heartbeat || heartbeat.coordinatorId !== coordinatorId) return undefined;
    this.upsert(heartbeat, observedAt);
    return this.byId.get(coordinatorId);
  }

  /** One refresh now (concurrent calls share it). */
  refresh(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.refreshing ??= this.doRefresh().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.refreshing;
    this.unwatch();
    this.redis.off("close", this.onClose);
    await closeValkey(this.subscriber);
  }

  private async doRefresh(): Promise<void> {
    const startedAt = Date.now();
    let ids: string[];
    let values: (string | null)[];
    try {
      ids = await valkeyCall(this.redis, "list coordinators", () => this.redis.smembers(this.keys.coordinators));
      values = ids.length === 0 ? [] : await valkeyCall(this.redis, "read coordinators", () => this.redis.mget(ids.map((id) => this.keys.coordinator(id))));
    } catch (error) {
      if (this.healthyNow) this.options.logger.warn("service discovery refresh failed; keeping the last known coordinators", { error: errorMessage(error) });
      this.healthyNow = false;
      return;
    }
    if (this.closed) return;
    if (!this.healthyNow) {
      this.healthyNow = true;
      this.graceUntil = this.everHealthy ? Date.now() + this.options.reconnectGraceMs : 0;
      if (this.everHealthy) this.options.logger.info("service discovery refresh recovered");
      this.everHealthy = true;
    }
    const present = new Set<string>();
    ids.forEach((id, i) => {
      const heartbeat = parseHeartbeat(values[i]);
      if (!heartbeat || heartbeat.coordinatorId !== id) return;
      present.add(id);
      this.upsert(heartbeat, startedAt);
    });
    if (Date.now() < this.graceUntil || Date.now() - this.disconnectedAt < this.options.reconnectGraceMs) return;
    for (const member of [...this.byId.values()]) {
      if (!present.has(member.coordinatorId) && member.seenAt < startedAt) this.remove(member.coordinatorId, "expired");
    }
    const stale = ids.filter((id) => !present.has(id));
    // Only ids whose heartbeat key is still absent: one may have re-registered since the MGET.
    if (stale.length > 0) await pruneCoordinators(this.redis, this.keys, stale).catch(() => undefined);
    for (const [id, at] of this.tombstones) if (startedAt - at > TOMBSTONE_MS) this.tombstones.delete(id);
  }

  private onMessage(message: string): void {
    const event = parseMembershipEvent(message);
    if (!event || this.closed) return;
    const now = Date.now();
    if (event.type === "leave") {
      this.tombstones.set(event.coordinatorId, now);
      this.remove(event.coordinatorId, "left");
      return;
    }
    if (event.type === "join") this.tombstones.delete(event.coordinatorId);
    this.upsert(event.info, now);
  }

  private upsert(heartbeat: CoordinatorHeartbeat, observedAt: number): void {
    const id = heartbeat.coordinatorId;
    const tombstone = this.tombstones.get(id);
    if (tombstone !== undefined && tombstone >= observedAt) return;
    const existing = this.byId.get(id);
    // An older process with this id (a stale read, or a misconfigured duplicate id): never overrides.
    if (existing && heartbeat.startedAt < existing.startedAt) return;
    if (existing && heartbeat.startedAt > existing.startedAt) {
      this.remove(id, "restarted");
    } else if (existing) {
      existing.seenAt = Math.max(existing.seenAt, observedAt);
      if (heartbeat.heartbeatAt <= existing.heartbeatAt) return;
      const drainingChanged = existing.draining !== heartbeat.draining || existing.address !== heartbeat.address;
      Object.assign(existing, heartbeat, { pending: 0 });
      if (drainingChanged) this.listener.changed(existing);
      return;
    }
    const member: CoordinatorMember = { ...heartbeat, seenAt: observedAt, pending: 0 };
    this.byId.set(id, member);
    this.listener.joined(member);
  }

  private remove(coordinatorId: string, reason: CoordinatorLostReason): void {
    if (!this.byId.delete(coordinatorId)) return;
    this.listener.lost(coordinatorId, reason);
  }
}
