/**
 * The gateway's CoordinatorDirectory backed by Valkey: membership from the coordinators' heartbeats
 * (CoordinatorMembership), placement by power of two choices, and the instance / agent -> coordinator
 * mappings read from Valkey so every gateway routes every instance the same way. Gateways hold no
 * state of their own. Errors: Valkey unreachable -> Unavailable; unknown instance or agent, or one
 * whose coordinator is gone -> NotFound. Layout and timings: docs/cluster.md.
 */
import type { Redis } from "ioredis";
import { Code, ConnectError } from "@connectrpc/connect";
import { isAnswering, type CoordinatorClients, type CoordinatorDirectory, type PlacementRequirements } from "../gateway/coordinator-directory.js";
import { ClusterKeys, parseInstanceLocation } from "./cluster-keys.js";
import { expireOrphans } from "./cluster-scripts.js";
import { CoordinatorMembership, type CoordinatorLostReason, type CoordinatorMember } from "./coordinator-membership.js";
import { describeNoCapacity, pickCoordinator } from "./placement.js";
import { closeValkey, describeValkey, ownValkey, pipelineResults, valkeyCall, type ValkeyClientOptions } from "./valkey-client.js";
import { errorMessage } from "../shared/errors.js";
import { silentLogger, type Logger } from "../shared/logger.js";

export interface CoordinatorAddress {
  coordinatorId: string;
  address: string;
}

/**
 * Clients for one coordinator; `close` (if any) is called when the coordinator leaves the view, with a
 * grace (ms) during which calls in flight may still finish (after a clean leave; 0 otherwise).
 */
export type ClosableCoordinatorClients = CoordinatorClients & { close?(graceMs?: number): void | Promise<void> };

export interface ValkeyCoordinatorDirectoryOptions {
  /** A connection (the caller closes it) or a URL (the directory opens and closes its own). */
  redis: Redis | string;
  /** Clients for a coordinator; see grpcCoordinatorConnector. */
  connect(info: CoordinatorAddress): ClosableCoordinatorClients;
  /** Membership refresh period. Default 1000. */
  refreshMs?: number;
  /** Default "podium:". */
  keyPrefix?: string;
  /** After Valkey comes back, how long absent coordinators get to heartbeat before they count as lost. Default 5000. */
  reconnectGraceMs?: number;
  /** How long the mappings of a lost coordinator's instances stay readable ("coordinator is gone"). Default 10 min. */
  orphanRetentionMs?: number;
  logger?: Logger;
  /** Random source for placement (tests). */
  random?: () => number;
  /** Connection tuning when `redis` is a URL. */
  valkey?: ValkeyClientOptions;
}

/** Instance locations a gateway keeps (~100 bytes each). */
const LOCATED_MAX = 65_536;

/** After a coordinator's clean leave, how long calls in flight to it may still finish. */
const LEFT_CLOSE_GRACE_MS = 2000;

export type CoordinatorLostListener = (coordinatorId: string, reason: CoordinatorLostReason) => void;

interface CachedClients {
  address: string;
  clients: ClosableCoordinatorClients;
}

export class ValkeyCoordinatorDirectory implements CoordinatorDirectory {
  private readonly redis: Redis;
  private readonly owned: boolean;
  private readonly keys: ClusterKeys;
  private readonly membership: CoordinatorMembership;
  private readonly clients = new Map<string, CachedClients>();
  /** Instance id -> the id of the coordinator it lives on, for instances found on a live coordinator (oldest dropped first). */
  private readonly located = new Map<string, string>();
  private readonly lostListeners = new Set<CoordinatorLostListener>();
  private readonly logger: Logger;
  private readonly random: () => number;
  private readonly orphanRetentionMs: number;
  private closed = false;

  constructor(private readonly options: ValkeyCoordinatorDirectoryOptions) {
    this.logger = options.logger ?? silentLogger;
    this.random = options.random ?? Math.random;
    this.orphanRetentionMs = options.orphanRetentionMs ?? 10 * 60_000;
    this.keys = new ClusterKeys(options.keyPrefix);
    ({ redis: this.redis, owned: this.owned } = ownValkey(options.redis, { connectionName: "podium-gateway", ...options.valkey }));
    this.membership = new CoordinatorMembership(
      this.redis,
      this.keys,
      {
        joined: (member) => this.logger.info("coordinator joined", { coordinator_id: member.coordinatorId, address: member.address }),
        changed: (member) => {
          this.logger.info("coordinator changed", { coordinator_id: member.coordinatorId, draining: member.draining, address: member.address });
          this.dropClients(member.coordinatorId, member.address);
        },
        lost: (id, reason) => this.onLost(id, reason),
      },
      { refreshMs: options.refreshMs ?? 1000, reconnectGraceMs: options.reconnectGraceMs ?? 5000, logger: this.logger },
    );
  }

  /** Resolves after the first membership refresh (successful or not). */
  ready(): Promise<void> {
    return this.membership.ready;
  }

  /** False while Valkey is unreachable. */
  get healthy(): boolean {
    return this.membership.healthy;
  }

  /** The coordinators currently registered, with their last reported load. */
  members(): CoordinatorMember[] {
    return this.membership.members().map((m) => ({ ...m }));
  }

  /** Called when a coordinator leaves the view (clean leave, expired heartbeat, restart). Returns an unsubscribe. */
  onCoordinatorLost(listener: CoordinatorLostListener): () => void {
    this.lostListeners.add(listener);
    return () => this.lostListeners.delete(listener);
  }

  async place(signal?: AbortSignal, requirements: PlacementRequirements = {}): Promise<CoordinatorClients> {
    await this.membership.ready;
    this.checkOpen(signal);
    this.checkValkey("cannot place new instances right now");
    const eligible = this.membership.members().filter((m) => !requirements.replicated || m.replicated === true);
    if (requirements.replicated && eligible.length === 0) {
      throw new ConnectError("no coordinator with replication (--replicate-bucket) is registered", Code.Unavailable);
    }
    const members = eligible.filter((m) => !requirements.exclude?.has(m.coordinatorId));
    const view = members.map((m) => ({
      member: m,
      coordinatorId: m.coordinatorId,
      instances: m.instances + m.pending,
      capacity: m.capacity,
      cpuLoad: m.cpuLoad,
      draining: m.draining,
      // Its circuit breaker is open: it failed or hung before its heartbeat expired.
      unanswering: !isAnswering(this.clientsFor(m)),
    }));
    let chosen = pickCoordinator(view, this.random);
    // Every usable coordinator's circuit is open: try one of them anyway (past its breaker) rather than refuse.
    const panic = !chosen && view.some((c) => c.unanswering);
    if (panic)
      chosen = pickCoordinator(
        view.map((c) => ({ ...c, unanswering: false })),
        this.random,
      );
    if (!chosen) throw new ConnectError(describeNoCapacity(view), Code.Unavailable);
    // Counted until the coordinator's next heartbeat reports it, so a burst of placements spreads out.
    if (!requirements.read) chosen.member.pending++;
    const clients = this.clientsFor(chosen.member);
    return panic ? (clients.unguarded ?? clients) : clients;
  }

  /**
   * An instance stays on the coordinator that runs it, so its coordinator's id is looked up in Valkey once and
   * then kept (`located`, bounded), and a message costs no Valkey round trip while that coordinator is a
   * member (checked every time, in memory). When it no longer is (gone, or restarted under a new id that
   * restored the instance and re-registered it), the entry is dropped and Valkey read again.
   */
  async locateInstance(instanceId: string, signal?: AbortSignal): Promise<CoordinatorClients> {
    this.checkOpen(signal);
    const known = this.located.get(instanceId);
    if (known !== undefined) {
      const member = this.membership.get(known);
      if (member) return this.clientsFor(member);
      this.located.delete(instanceId);
    }
    const coordinatorId = await this.lookUpInstance(instanceId);
    const clients = await this.liveCoordinator(coordinatorId, `instance ${instanceId} was on coordinator ${coordinatorId}, which is gone (no heartbeat); the instance has ended`);
    if (this.located.size >= LOCATED_MAX) this.located.delete(this.located.keys().next().value as string);
    this.located.set(instanceId, coordinatorId);
    return clients;
  }

  private async lookUpInstance(instanceId: string): Promise<string> {
    const text = await valkeyCall(this.redis, `locate instance ${instanceId}`, () => this.redis.get(this.keys.instance(instanceId)));
    const location = parseInstanceLocation(text);
    if (!location) throw new ConnectError(`unknown instance ${instanceId}`, Code.NotFound);
    return location.coordinatorId;
  }

  async locateAgent(agentId: string, signal?: AbortSignal): Promise<CoordinatorClients> {
    this.checkOpen(signal);
    const coordinatorId = await valkeyCall(this.redis, `locate agent ${agentId}`, () => this.redis.get(this.keys.agent(agentId)));
    if (!coordinatorId) throw new ConnectError(`unknown agent ${agentId}`, Code.NotFound);
    // UNAVAILABLE, not NOT_FOUND: the agent exists, so a create must not start it afresh elsewhere.
    return this.liveCoordinator(
      coordinatorId,
      `agent ${agentId} last ran on coordinator ${coordinatorId}, which is gone (no heartbeat); its data is unavailable until that coordinator returns`,
      Code.Unavailable,
    );
  }

  async placeAgent(agentId: string, signal?: AbortSignal): Promise<CoordinatorClients> {
    this.checkOpen(signal);
    const [home, writer] = await valkeyCall(this.redis, `locate agent ${agentId}`, async () =>
      pipelineResults(await this.redis.multi().get(this.keys.agent(agentId)).get(this.keys.agentWriter(agentId)).exec()),
    );
    if (typeof home !== "string") return this.place(signal);
    const member = this.membership.get(home) ?? (await this.membership.fetch(home));
    if (member) return this.clientsFor(member);
    // Its coordinator is gone. A replicated agent resumes on any replicated coordinator (restored from S3).
    if (typeof writer === "string") {
      this.logger.info("agent's coordinator is gone; resuming it from its replicas", { agent_id: agentId, coordinator_id: home });
      return this.place(signal, { replicated: true });
    }
    throw new ConnectError(
      `agent ${agentId} last ran on coordinator ${home}, which is gone (no heartbeat); its data is unavailable until that coordinator returns (agents are not replicated: docs/replication.md)`,
      Code.Unavailable,
    );
  }

  async recordAgent(agentId: string, coordinatorId: string): Promise<void> {
    this.checkOpen();
    await valkeyCall(this.redis, `record agent ${agentId}`, () => this.redis.set(this.keys.agent(agentId), coordinatorId));
  }

  /** Idempotent: the coordinator writes the same mapping; an existing instance mapping (and its TTL) is kept. */
  async recordInstance(record: { instanceId: string; agentId: string; coordinatorId: string }): Promise<void> {
    this.checkOpen();
    const { instanceId, agentId, coordinatorId } = record;
    await valkeyCall(this.redis, `record instance ${instanceId}`, async () => {
      const multi = this.redis
        .multi()
        .set(this.keys.instance(instanceId), JSON.stringify({ coordinatorId, agentId }), "NX")
        .set(this.keys.agent(agentId), coordinatorId)
        .sadd(this.keys.coordinatorInstances(coordinatorId), instanceId);
      pipelineResults(await multi.exec());
    });
  }

  async all(signal?: AbortSignal): Promise<CoordinatorClients[]> {
    await this.membership.ready;
    this.checkOpen(signal);
    this.checkValkey("cannot list coordinators right now");
    return this.membership.members().map((m) => this.clientsFor(m));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.membership.close();
    for (const id of [...this.clients.keys()]) this.dropClients(id);
    this.lostListeners.clear();
    if (this.owned) await closeValkey(this.redis);
  }

  private checkOpen(signal?: AbortSignal): void {
    if (this.closed) throw new ConnectError("coordinator directory is closed", Code.Unavailable);
    if (signal?.aborted) throw new ConnectError("request aborted", Code.Canceled);
  }

  /** The membership view is only trusted while Valkey answers (the last refresh worked and the connection is up). */
  private checkValkey(consequence: string): void {
    if (!this.membership.healthy || this.redis.status !== "ready") {
      throw new ConnectError(`service discovery (Valkey at ${describeValkey(this.redis)}) is unavailable; ${consequence}`, Code.Unavailable);
    }
  }

  private async liveCoordinator(coordinatorId: string, goneMessage: string, goneCode: Code = Code.NotFound): Promise<CoordinatorClients> {
    const member = this.membership.get(coordinatorId) ?? (await this.membership.fetch(coordinatorId));
    if (!member) throw new ConnectError(goneMessage, goneCode);
    return this.clientsFor(member);
  }

  private clientsFor(member: CoordinatorMember): CoordinatorClients {
    const cached = this.clients.get(member.coordinatorId);
    if (cached && cached.address === member.address) return cached.clients;
    if (cached) this.dropClients(member.coordinatorId);
    const clients = this.options.connect({ coordinatorId: member.coordinatorId, address: member.address });
    this.clients.set(member.coordinatorId, { address: member.address, clients });
    return clients;
  }

  /** Closes and forgets a coordinator's clients (unless they already point at `keepAddress`). */
  private dropClients(coordinatorId: string, keepAddress?: string, graceMs = 0): void {
    const cached = this.clients.get(coordinatorId);
    if (!cached || cached.address === keepAddress) return;
    this.clients.delete(coordinatorId);
    try {
      void Promise.resolve(cached.clients.close?.(graceMs)).catch(() => undefined);
    } catch {
      // closing a transport is best effort
    }
  }

  private onLost(coordinatorId: string, reason: CoordinatorLostReason): void {
    this.logger.warn("coordinator lost", { coordinator_id: coordinatorId, reason });
    // After a clean leave its streams still carry their last events (each instance's real `terminated`).
    this.dropClients(coordinatorId, undefined, reason === "left" ? LEFT_CLOSE_GRACE_MS : 0);
    for (const listener of [...this.lostListeners]) {
      try {
        listener(coordinatorId, reason);
      } catch (error) {
        this.logger.error("coordinator-lost listener failed", { coordinator_id: coordinatorId, error: errorMessage(error) });
      }
    }
    if (reason === "expired") void this.expireOrphans(coordinatorId);
  }

  /**
   * A coordinator that died cannot expire its instances' mappings; give them the orphan retention so
   * lookups say "gone" for a while and then "unknown". If it comes back, its re-registration rewrites them.
   */
  private async expireOrphans(coordinatorId: string): Promise<void> {
    try {
      const count = await valkeyCall(this.redis, "expire orphaned instances", () => expireOrphans(this.redis, this.keys, coordinatorId, this.orphanRetentionMs));
      if (count > 0) this.logger.info("lost coordinator's instance mappings will expire", { coordinator_id: coordinatorId, instances: count, retention_ms: this.orphanRetentionMs });
    } catch (error) {
      this.logger.warn("could not expire a lost coordinator's instance mappings", { coordinator_id: coordinatorId, error: errorMessage(error) });
    }
  }
}
