/**
 * The one object a coordinator uses for durability (docs/replication.md):
 *
 *   prepare(agentId, agentDir)  take the agent's single-writer lease; restore its directory from S3
 *                               when this host has no copy, or a stale one (another coordinator wrote
 *                               the agent since)
 *   track(agentId, agentDir)    replicate its four databases (one supervised Litestream per agent)
 *   release(agentId)            wait for the last writes to reach S3, stop Litestream (final sync),
 *                               give the lease up; S3 away: keep uploading in the background under
 *                               the lease (background-uploads.ts)
 *   status / holds / fork / close
 *
 * Losing a lease calls `onLeaseLost`; the coordinator then stops the agent (fencing). Taken over by another
 * coordinator: that agent's Litestream is killed at once, without a final upload. Lapsed (not renewed in
 * time): the final upload is made under the lease taken again (background-uploads.ts).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Redis } from "ioredis";
import { Code, ConnectError } from "@connectrpc/connect";
import { ClusterKeys } from "../cluster/cluster-keys.js";
import { closeValkey, ownValkey, toValkeyError } from "../cluster/valkey-client.js";
import { errorMessage } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { AgentLease, rememberValkeyRun } from "./agent-lease.js";
import { createReplicationS3Client, readGenerationMarker, writeGenerationMarker, type GenerationMarker } from "./generation-marker.js";
import { restoreAgent } from "./agent-restore.js";
import { moveAsideStaleCopy } from "./stale-copies.js";
import { LitestreamSupervisor } from "./litestream-supervisor.js";
import { UploadKeeper, waitForFinalUpload } from "./upload-keeper.js";
import { BackgroundUploads } from "./background-uploads.js";
import { agentDatabasePaths, compileS3Settings, compileTimings, replicaPath, type ReplicationS3Settings, type ReplicationTimings } from "./replication-options.js";
import { finalMarker, liveStatus, ReleasedStatuses, statusFromMarker, type ReplicationCounters, type ReplicationStatus } from "./replication-status.js";

export type { ReplicationCounters, ReplicationStatus } from "./replication-status.js";

export interface AgentReplication {
  /**
   * Takes the lease and restores from S3 when needed. Call before opening the agent's stores. `fresh`:
   * the id was just generated, so there is nothing to restore (no S3 lookup; new agents start while S3 is down).
   */
  prepare(agentId: string, agentDir: string, signal?: AbortSignal, options?: { fresh?: boolean }): Promise<{ restored: boolean }>;
  /**
   * Starts replicating. Call after the stores (and the Chronicle) are open: only existing files are
   * tracked. Resolves once Litestream runs; rejects (Unavailable) when the replica's generation marker
   * could not be re-opened, so the agent must not run (see prepare).
   */
  track(agentId: string, agentDir: string): Promise<void>;
  /** Final sync, stop replicating, release the lease. Call after the agent stopped, before closing its stores. */
  release(agentId: string): Promise<{ synced: boolean }>;
  status(agentId: string): ReplicationStatus | undefined;
  /** Status of every agent replicated here now. */
  statuses(): ReplicationStatus[];
  /** Monotonic counts since this coordinator started (metrics). */
  counters(): ReplicationCounters;
  /**
   * status() while the agent is replicated here; otherwise what is known of its replicas: the last
   * release on this coordinator, or the generation marker in S3 (state "stopped"). Undefined: no replica.
   */
  describe(agentId: string, signal?: AbortSignal): Promise<ReplicationStatus | undefined>;
  /** True while this coordinator may write the agent (lease held; always true without Valkey). */
  holds(agentId: string): boolean;
  /** Restores `sourceAgentId` as of `timestamp` into `targetDir` as the new agent `targetAgentId`, and replicates it. */
  fork(options: ForkOptions): Promise<{ restored: true; ms: number }>;
  close(): Promise<void>;
}

export interface ForkOptions {
  sourceAgentId: string;
  targetAgentId: string;
  targetDir: string;
  timestamp?: Date;
  signal?: AbortSignal;
}

export interface AgentReplicationOptions extends ReplicationTimings {
  s3: ReplicationS3Settings;
  /** Valkey (URL or connection) for leases; without it there is no single-writer guarantee (one coordinator). */
  redis?: Redis | string;
  coordinatorId: string;
  onLeaseLost: (agentId: string, reason: string) => void;
  logger: Logger;
  /** Lease time to live. Default 5000 (renewed every ttl/3). */
  leaseTtlMs?: number;
  /** prepare() waits this long for a dead coordinator's lease to expire. Default ttl + 1000. */
  leaseWaitMs?: number;
  keyPrefix?: string;
  /** Where the generated Litestream configs go. Default <tmpdir>/podium-replication-<coordinatorId>. */
  configDir?: string;
  /**
   * How long a dead coordinator's Litestream may still make its final upload (its upload keeper kills it
   * then), and prepare() waits for it before restoring, plus 5 s. Default 30000.
   */
  finalUploadLimitMs?: number;
  /** release(): how long to wait for S3 to catch up, then for Litestream's final sync. Default 10000 each. */
  finalSyncTimeoutMs?: number;
  binary?: string;
  probeIntervalMs?: number;
  /** Called before a stale local copy is moved aside: unmounts a disk volume that only stayed mounted for a wake. */
  unmountIdle?: (agentDir: string) => Promise<void>;
}

interface Entry {
  agentDir: string;
  lease: AgentLease | undefined;
  supervisor: LitestreamSupervisor | undefined;
  fenced: boolean;
  /** The generation marker re-opened (its clean positions removed) before this session uploads anything. */
  opened: Promise<void>;
  /** A lapsed lease's final upload (fence): release() waits for it instead of stopping Litestream. */
  finalUpload?: Promise<void>;
}

export function createAgentReplication(options: AgentReplicationOptions): AgentReplication {
  const s3 = compileS3Settings(options.s3);
  const timings = compileTimings(options);
  const keys = new ClusterKeys(options.keyPrefix);
  const keyPrefix = keys.prefix;
  const valkey = options.redis === undefined ? undefined : ownValkey(options.redis, { connectionName: `podium-replication-${options.coordinatorId}` });
  if (valkey) rememberValkeyRun(valkey.redis); // tells a Valkey restarted empty from a new one (agent-lease.ts)
  const configDir = options.configDir ?? path.join(os.tmpdir(), `podium-replication-${options.coordinatorId}`);
  const finalSyncMs = options.finalSyncTimeoutMs ?? 10_000;
  const finalUploadLimitMs = options.finalUploadLimitMs ?? 30_000;
  const s3Client = createReplicationS3Client(s3);
  const entries = new Map<string, Entry>();
  const released = new ReleasedStatuses();
  const aggregate = (agentId: string, entry: Entry): ReplicationStatus => liveStatus(agentId, entry.supervisor?.status(), entry.fenced);
  const counts: ReplicationCounters = { restoresClean: 0, restoresReconciled: 0, releasesSynced: 0, releasesUnsynced: 0, fenced: 0, forks: 0, litestreamRestarts: 0 };
  const busy = new Set<string>();
  const logger = options.logger;
  // Without Valkey there are no leases, so no other coordinator to tell (docs/replication.md).
  const keeper = valkey ? UploadKeeper.start({ redis: valkey.redis, keyPrefix, coordinatorId: options.coordinatorId, orphanLimitMs: finalUploadLimitMs, logger }) : undefined;
  const writerKey = (agentId: string) => keys.agentWriter(agentId);
  let closed = false;

  const fence = (agentId: string, reason: string, takenOver: boolean): void => {
    const entry = entries.get(agentId);
    if (!entry || entry.fenced) return;
    entry.fenced = true;
    counts.fenced++;
    try {
      options.onLeaseLost(agentId, reason);
    } finally {
      const supervisor = entry.supervisor;
      // Taken over: another coordinator owns the agent's replicas now, no final upload.
      if (takenOver || !supervisor) void supervisor?.stop({ graceful: false });
      else entry.finalUpload = uploads.afterLapse(agentId, supervisor, uploaded(agentId, entry));
    }
  };

  const acquire = (agentId: string, signal?: AbortSignal): Promise<AgentLease | undefined> => {
    if (!valkey) return Promise.resolve(undefined);
    return AgentLease.acquire(
      {
        redis: valkey.redis,
        agentId,
        owner: options.coordinatorId,
        keyPrefix,
        logger,
        onLost: fence,
        // Valkey restarted empty: the last-writer key went with the lease; without it a stale copy elsewhere looks current.
        onRecreated: (id) => void markWriter(id).catch((err: unknown) => logger.warn("cannot record the agent's last writer again", { agent_id: id, error: errorMessage(err) })),
        ...(options.leaseTtlMs ? { ttlMs: options.leaseTtlMs } : {}),
      },
      { ...(options.leaseWaitMs ? { waitMs: options.leaseWaitMs } : {}), ...(signal ? { signal } : {}) },
    );
  };

  /** The local copy is stale when another coordinator wrote the agent last (unknown: keep it). */
  const localCopyIsCurrent = async (agentId: string, agentDir: string, signal?: AbortSignal): Promise<boolean> => {
    if (!agentDatabasePaths(agentDir).some((db) => fs.existsSync(db.path))) return false;
    if (!valkey) return true;
    let writer: string | null;
    try {
      writer = await valkey.redis.get(writerKey(agentId));
    } catch (err) {
      throw toValkeyError(err, `read the last writer of agent ${agentId}`);
    }
    if (writer === null) {
      // Valkey lost the key (restarted empty while the agent ran nowhere): the replica's generation marker,
      // written by every session that uploads, names the last writer too. No marker: S3 has nothing newer.
      try {
        writer = (await readGenerationMarker(s3Client, s3, agentId, signal))?.coordinatorId || null;
      } catch (err) {
        throw new ConnectError(`cannot read the replicas of agent ${agentId} to tell whether this copy is current: ${errorMessage(err)}`, Code.Unavailable);
      }
    }
    if (writer === null || writer === options.coordinatorId) return true;
    await options.unmountIdle?.(agentDir);
    const aside = moveAsideStaleCopy(agentDir);
    logger.warn("local copy of agent is stale (another coordinator wrote it since); restoring from S3", { agent_id: agentId, last_writer: writer, moved_to: aside });
    return false;
  };

  const markWriter = async (agentId: string): Promise<void> => {
    if (!valkey) return;
    try {
      await valkey.redis.set(writerKey(agentId), options.coordinatorId);
    } catch (err) {
      throw toValkeyError(err, `record the writer of agent ${agentId}`);
    }
  };

  const startSupervisor = (agentId: string, agentDir: string, lease: AgentLease | undefined): LitestreamSupervisor => {
    const databases = agentDatabasePaths(agentDir)
      .filter((db) => fs.existsSync(db.path))
      .map((db) => ({ name: db.name, path: path.resolve(db.path), replicaPath: replicaPath(s3, agentId, db.name) }));
    return LitestreamSupervisor.start({
      name: agentId,
      databases,
      s3,
      timings,
      configDir,
      logger: logger.child({ agent_id: agentId }),
      generationMarker: { client: s3Client, agentId, coordinatorId: options.coordinatorId, mayWrite: () => !entries.get(agentId)?.fenced && (lease?.holds() ?? true) },
      onProcess: (pid) => (pid === undefined ? keeper?.unwatch(agentId) : keeper?.watch(agentId, pid)),
      ...(options.binary ? { binary: options.binary } : {}),
      ...(options.probeIntervalMs ? { probeIntervalMs: options.probeIntervalMs } : {}),
    });
  };

  const stopSupervisor = async (agentId: string, supervisor: LitestreamSupervisor): Promise<boolean> => {
    const caughtUp = await supervisor.waitForCatchUp(finalSyncMs);
    const { synced } = await supervisor.stop({ graceful: true, timeoutMs: finalSyncMs });
    if (!synced) {
      logger.warn("agent's last writes may not be in S3 (final sync failed or timed out)", { agent_id: agentId, caught_up: caughtUp, error: supervisor.status().lastError });
    }
    return synced;
  };

  const exclusive = async <T>(agentId: string, fn: () => Promise<T>): Promise<T> => {
    if (closed) throw new ConnectError("replication is closed", Code.Unavailable);
    // A new instance of an agent that is still being released waits for the final sync; one whose last
    // writes are still being uploaded in the background takes over from that upload (its copy is current).
    await releasing.get(agentId);
    await uploads.cancel(agentId);
    if (busy.has(agentId) || entries.has(agentId)) {
      throw new ConnectError(`agent ${agentId} is already being prepared or replicated on this coordinator`, Code.AlreadyExists);
    }
    busy.add(agentId);
    try {
      return await fn();
    } finally {
      busy.delete(agentId);
    }
  };

  const releasing = new Map<string, Promise<{ synced: boolean }>>();
  const release = (agentId: string): Promise<{ synced: boolean }> => {
    const entry = entries.get(agentId);
    if (!entry) return releasing.get(agentId) ?? Promise.resolve({ synced: false });
    entries.delete(agentId);
    counts.litestreamRestarts += entry.supervisor?.status().restarts ?? 0;
    const done = releaseEntry(agentId, entry).finally(() => releasing.delete(agentId));
    releasing.set(agentId, done);
    return done;
  };

  /** After a complete final sync, every coordinator can report the stopped agent, and its next restore is clean. */
  const recordFinalPositions = async (agentId: string, final: ReplicationStatus): Promise<void> => {
    const marker = finalMarker(final, options.coordinatorId);
    if (!marker) return;
    await writeGenerationMarker(s3Client, s3, agentId, marker).catch((err: unknown) => {
      logger.warn("could not record the final replica positions", { agent_id: agentId, error: errorMessage(err) });
    });
  };

  const uploads = new BackgroundUploads({ finalSyncMs, logger, acquire, stopSupervisor, closing: () => closed });
  /** After a background upload completed: the agent's final status and positions, as a synced release records them. */
  const uploaded = (agentId: string, entry: Entry) => async (): Promise<void> => {
    const final = aggregate(agentId, entry);
    released.remember({ ...final, state: "stopped", lagMs: 0 });
    await recordFinalPositions(agentId, final);
  };

  const releaseEntry = async (agentId: string, entry: Entry): Promise<{ synced: boolean }> => {
    let synced = false;
    let draining = false;
    try {
      if (entry.supervisor && !entry.fenced) {
        if (entry.lease && (await uploads.behind(entry.supervisor, entry.lease))) {
          uploads.drain(agentId, entry.supervisor, entry.lease, uploaded(agentId, entry));
          draining = true;
        } else synced = await stopSupervisor(agentId, entry.supervisor);
      } else if (entry.finalUpload) await entry.finalUpload;
      else await entry.supervisor?.stop({ graceful: false });
      const final = aggregate(agentId, entry);
      if (synced) counts.releasesSynced++;
      else counts.releasesUnsynced++;
      released.remember({ ...final, state: "stopped", lagMs: synced ? 0 : final.lagMs });
      if (synced && entry.lease?.holds() !== false) await recordFinalPositions(agentId, final);
    } catch (err) {
      logger.error("stopping replication failed", { agent_id: agentId, error: errorMessage(err) });
    } finally {
      if (!draining) await entry.lease?.release();
    }
    logger.info("agent released", { agent_id: agentId, synced, ...(draining ? { uploading: true } : {}) });
    return { synced };
  };

  return {
    prepare(agentId, agentDir, signal, prepareOptions = {}) {
      return exclusive(agentId, async () => {
        const lease = await acquire(agentId, signal);
        try {
          if (valkey && !prepareOptions.fresh) {
            // A coordinator that died with the agent may still be uploading its last writes (upload-keeper.ts).
            const waitedMs = await waitForFinalUpload(valkey.redis, keys, agentId, finalUploadLimitMs + 5000, signal).catch((err: unknown) =>
              Promise.reject(toValkeyError(err, `look up uploads of agent ${agentId}`)),
            );
            if (waitedMs !== undefined) logger.info("waited for a dead coordinator's final upload of the agent", { agent_id: agentId, waited_ms: waitedMs });
          }
          let restored = false;
          /** Whether S3 holds a replica (and so maybe a marker): unknown (undefined) unless a restore looked. */
          let replicaFound: boolean | undefined;
          if (!prepareOptions.fresh && !(await localCopyIsCurrent(agentId, agentDir, signal))) {
            const result = await restoreAgent({ agentId, targetDir: agentDir, s3: options.s3, client: s3Client, ...(signal ? { signal } : {}), ...(options.binary ? { binary: options.binary } : {}) });
            restored = result.restored;
            replicaFound = result.restored;
            if (restored && result.clean) counts.restoresClean++;
            if (result.reconciled) {
              // Its last writer died: the databases were cut at different points, and seqs after the cut were never replicated.
              counts.restoresReconciled++;
              const r = result.reconciled;
              logger.warn("agent restored after an unclean loss of its coordinator; reconciled its databases", {
                agent_id: agentId,
                last_seq: r.lastSeq,
                dropped_messages: r.droppedMessages,
                interrupted_turns: r.interruptedTurns.join(","),
                queued_turns: r.queuedTurns.join(","),
                state_version: r.stateVersion,
                dropped_patches: r.droppedPatches,
                state_ahead: r.stateAhead,
                dropped_iterations: r.droppedIterations,
                workspace_ahead: r.workspaceAhead,
                restored_event_seq: r.restoredEventSeq,
              });
            }
          }
          await markWriter(agentId);
          // The marker names the generation a restore takes (and, after a clean release, where it ends). This
          // session's Litestream may start a new generation, and a coordinator that dies before recording it
          // would leave the marker naming the old one: the restore would drop this session's writes as if
          // they never happened. So the marker is re-opened (no generation, no positions: Litestream picks
          // the newest) before anything is uploaded; the write overlaps the agent's start, and track() waits
          // for it. Not needed when S3 has no replica of the agent (a new agent).
          const reopen = !prepareOptions.fresh && (replicaFound ?? true);
          const opened = reopen ? writeGenerationMarker(s3Client, s3, agentId, { generations: {}, coordinatorId: options.coordinatorId, updatedAt: Date.now() }) : Promise.resolve();
          opened.catch(() => undefined); // awaited in track()
          entries.set(agentId, { agentDir, lease, supervisor: undefined, fenced: false, opened });
          logger.info("agent prepared", { agent_id: agentId, restored, lease: lease ? "held" : "none" });
          return { restored };
        } catch (err) {
          await lease?.release();
          throw err;
        }
      });
    },

    async track(agentId, agentDir) {
      const entry = entries.get(agentId);
      if (!entry) throw new ConnectError(`agent ${agentId} was not prepared for replication`, Code.FailedPrecondition);
      if (entry.supervisor) throw new ConnectError(`agent ${agentId} is already replicated`, Code.AlreadyExists);
      try {
        await entry.opened;
      } catch (err) {
        throw new ConnectError(`cannot re-open the replica of agent ${agentId} (S3): ${errorMessage(err)}`, Code.Unavailable);
      }
      if (entry.fenced || entries.get(agentId) !== entry || entry.supervisor) return;
      entry.supervisor = startSupervisor(agentId, agentDir, entry.lease);
    },

    release,

    status(agentId) {
      const entry = entries.get(agentId);
      return entry ? aggregate(agentId, entry) : undefined;
    },

    statuses() {
      return [...entries].map(([agentId, entry]) => aggregate(agentId, entry));
    },

    counters() {
      // Live agents' Litestream restarts are added at release; count them meanwhile too.
      let live = 0;
      for (const entry of entries.values()) live += entry.supervisor?.status().restarts ?? 0;
      return { ...counts, litestreamRestarts: counts.litestreamRestarts + live };
    },

    async describe(agentId, signal) {
      const entry = entries.get(agentId);
      if (entry) return aggregate(agentId, entry);
      await releasing.get(agentId);
      const memo = released.get(agentId);
      if (memo) return memo;
      let marker: GenerationMarker | undefined;
      try {
        marker = await readGenerationMarker(s3Client, s3, agentId, signal);
      } catch (err) {
        throw new ConnectError(`cannot read the replicas of agent ${agentId}: ${errorMessage(err)}`, Code.Unavailable);
      }
      return marker ? statusFromMarker(agentId, marker) : undefined;
    },

    holds(agentId) {
      const entry = entries.get(agentId);
      if (!entry || entry.fenced) return false;
      return entry.lease ? entry.lease.holds() : true;
    },

    fork({ sourceAgentId, targetAgentId, targetDir, timestamp, signal }) {
      return exclusive(targetAgentId, async () => {
        const started = performance.now();
        if (fs.existsSync(targetDir)) throw new ConnectError(`agent ${targetAgentId} already exists on this coordinator`, Code.AlreadyExists);
        const lease = await acquire(targetAgentId, signal);
        try {
          const known = valkey ? await valkey.redis.exists(writerKey(targetAgentId)).catch((err: unknown) => Promise.reject(toValkeyError(err, "look up the fork id"))) : 0;
          if (known > 0) {
            throw new ConnectError(`agent ${targetAgentId} already exists`, Code.AlreadyExists);
          }
          const { restored } = await restoreAgent({
            agentId: sourceAgentId,
            targetDir,
            s3: options.s3,
            client: s3Client,
            ...(timestamp ? { timestamp } : {}),
            ...(signal ? { signal } : {}),
            ...(options.binary ? { binary: options.binary } : {}),
          });
          if (!restored) throw new ConnectError(`agent ${sourceAgentId} has no replica in S3`, Code.NotFound);
          await markWriter(targetAgentId);
          // Replicate the fork under its own id, so it can resume on any coordinator.
          const supervisor = startSupervisor(targetAgentId, targetDir, lease);
          if (!(await stopSupervisor(targetAgentId, supervisor))) {
            throw new ConnectError(`fork ${targetAgentId} was restored locally but could not be replicated to S3`, Code.Unavailable);
          }
          await recordFinalPositions(targetAgentId, liveStatus(targetAgentId, supervisor.status(), false));
          counts.forks++;
          return { restored: true as const, ms: Math.round(performance.now() - started) };
        } catch (err) {
          if (!(err instanceof ConnectError && err.code === Code.AlreadyExists)) fs.rmSync(targetDir, { recursive: true, force: true });
          throw err;
        } finally {
          await lease?.release();
        }
      });
    },

    async close() {
      if (closed) return;
      closed = true;
      // Agents already being released (their instance ended) are awaited too.
      await Promise.all([...[...entries.keys()].map((agentId) => release(agentId)), ...releasing.values()]);
      await uploads.cancelAll();
      keeper?.close();
      if (valkey?.owned) await closeValkey(valkey.redis);
      s3Client.destroy();
    },
  };
}
