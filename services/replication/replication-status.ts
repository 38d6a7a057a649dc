/**
 * What replication reports about an agent (GET /api/v1/agents/{id}/replication, metrics): from its live
 * Litestream supervisor, from the last release on this coordinator, or from the generation marker in S3.
 */
import type { GenerationMarker } from "./generation-marker.js";
import type { SupervisorStatus } from "./litestream-supervisor.js";
import type { DatabaseReplicationStatus } from "./replication-tracker.js";

export interface ReplicationStatus {
  agentId: string;
  /** replicating: Litestream running; restarting: it died and is being restarted; fenced: lease lost. */
  state: "replicating" | "restarting" | "stopped" | "fenced";
  /** Age of the oldest local change not yet in S3 (max over the databases); 0 when caught up. */
  lagMs: number;
  /** Generation and position of the database furthest behind ("<generation>/<index hex>:<offset>"). */
  generation: string | undefined;
  position: string | undefined;
  /** Last time Litestream reported any of the agent's replicas (epoch ms). */
  lastSyncAt: number | undefined;
  restarts: number;
  lastError: string | undefined;
  databases: DatabaseReplicationStatus[];
}

export interface ReplicationCounters {
  /** Restores from S3: after a clean release elsewhere, or reconciled after an unclean loss. */
  restoresClean: number;
  restoresReconciled: number;
  releasesSynced: number;
  releasesUnsynced: number;
  /** Agents fenced here (lease lost to another coordinator). */
  fenced: number;
  forks: number;
  /** Litestream processes restarted after dying. */
  litestreamRestarts: number;
}

/** The status of an agent replicated here: the database furthest behind speaks for the agent. */
export function liveStatus(agentId: string, supervisor: SupervisorStatus | undefined, fenced: boolean): ReplicationStatus {
  const databases = supervisor?.databases ?? [];
  const worst = databases.reduce<DatabaseReplicationStatus | undefined>((a, b) => (!a || b.lagMs > a.lagMs ? b : a), undefined);
  const syncs = databases.map((d) => d.lastSyncAt).filter((t): t is number => t !== undefined);
  const running = supervisor && supervisor.state !== "stopped" && supervisor.state !== "stopping";
  return {
    agentId,
    state: fenced ? "fenced" : !running ? "stopped" : supervisor.state === "backoff" ? "restarting" : "replicating",
    lagMs: worst?.lagMs ?? 0,
    generation: worst?.generation,
    position: worst?.position,
    lastSyncAt: syncs.length > 0 ? Math.max(...syncs) : undefined,
    restarts: supervisor?.restarts ?? 0,
    lastError: supervisor?.lastError,
    databases,
  };
}

/** A stopped agent as its generation marker in S3 describes it (positions only after a clean release). */
export function statusFromMarker(agentId: string, marker: GenerationMarker): ReplicationStatus {
  const databases: DatabaseReplicationStatus[] = Object.entries(marker.generations).map(([db, generation]) => ({
    db,
    lagMs: 0,
    generation,
    position: marker.positions?.[db],
    lastSyncAt: marker.lastSyncAt,
    pendingChanges: 0,
  }));
  const first = databases.find((d) => d.db === "messages.db") ?? databases[0];
  return {
    agentId,
    state: "stopped",
    lagMs: 0,
    generation: first?.generation,
    position: first?.position,
    lastSyncAt: marker.lastSyncAt,
    restarts: 0,
    lastError: undefined,
    databases,
  };
}

/** The marker written after a complete final sync: where every replica ends. Undefined without generations. */
export function finalMarker(final: ReplicationStatus, coordinatorId: string): GenerationMarker | undefined {
  const generations: Record<string, string> = {};
  const positions: Record<string, string> = {};
  for (const db of final.databases) {
    if (db.generation) generations[db.db] = db.generation;
    if (db.position) positions[db.db] = db.position;
  }
  if (Object.keys(generations).length === 0) return undefined;
  return { generations, coordinatorId, updatedAt: Date.now(), positions, ...(final.lastSyncAt ? { lastSyncAt: final.lastSyncAt } : {}) };
}

/** The last status of agents released here, newest last, at most `limit` of them. */
export class ReleasedStatuses {
  private readonly statuses = new Map<string, ReplicationStatus>();

  constructor(private readonly limit = 10_000) {}

  remember(status: ReplicationStatus): void {
    this.statuses.delete(status.agentId);
    this.statuses.set(status.agentId, status);
    if (this.statuses.size > this.limit) this.statuses.delete(this.statuses.keys().next().value as string);
  }

  get(agentId: string): ReplicationStatus | undefined {
    return this.statuses.get(agentId);
  }
}
