/**
 * Replication lag of one database, from two observations:
 *
 * - samples of where the local WAL ends (wal-probe.ts, every `probeIntervalMs`): each new end is a
 *   "pending" change, stamped with the time it was first seen;
 * - Litestream's reports of where the replica ends (litestream-log.ts).
 *
 * WAL runs ("epochs") are told apart by their salt and ordered by when they were first seen. A pending
 * change is covered once the replica is in a later epoch, or in the same one at or past its end.
 * lag = age of the oldest pending change (0 when none). It under-reads by at most one probe interval
 * (a change is seen up to that long after it was committed).
 */
import { formatPosition, type LitestreamPosition } from "./litestream-config.js";
import type { LocalWalPosition } from "./wal-probe.js";

interface Pending {
  epoch: number;
  end: number;
  seenAt: number;
}

export interface DatabaseReplicationStatus {
  db: string;
  lagMs: number;
  generation: string | undefined;
  /** The replica's end as "<generation>/<index hex>:<offset>". */
  position: string | undefined;
  /** When Litestream last reported the replica's position (epoch ms). */
  lastSyncAt: number | undefined;
  pendingChanges: number;
}

export class ReplicationTracker {
  private readonly epochs = new Map<string, number>();
  private nextEpoch = 0;
  private readonly pending: Pending[] = [];
  private last: { epoch: number; end: number } | undefined;
  private replica: { position: LitestreamPosition; epoch: number | undefined } | undefined;
  private lastSyncAt: number | undefined;
  generation: string | undefined;

  constructor(
    readonly db: string,
    /** Called with the age (ms) of every pending change when it becomes covered. */
    private readonly onCovered?: (ageMs: number) => void,
  ) {}

  private epochOf(salt: string): number {
    let epoch = this.epochs.get(salt);
    if (epoch === undefined) {
      epoch = this.nextEpoch++;
      this.epochs.set(salt, epoch);
    }
    return epoch;
  }

  /** A sample of the local WAL end. */
  sample(local: LocalWalPosition | undefined, now: number): void {
    if (!local) return;
    const epoch = this.epochOf(local.salt);
    if (this.last && this.last.epoch === epoch && this.last.end === local.end) return;
    this.last = { epoch, end: local.end };
    // A WAL that just restarted holds nothing to replicate yet.
    if (local.frames > 0) this.pending.push({ epoch, end: local.end, seenAt: now });
    this.reconcile(now);
  }

  /** Litestream reported the replica's end; `salt` is that WAL index's salt when it could be read. */
  replicated(position: LitestreamPosition, salt: string | undefined, now: number): void {
    const previous = this.replica?.position;
    const sameRun = previous && previous.generation === position.generation;
    // Within a generation the replica only grows (a "calc" after a snapshot can report less).
    if (sameRun && (position.index < previous.index || (position.index === previous.index && position.offset < previous.offset))) {
      this.lastSyncAt = now;
      return;
    }
    this.replica = { position, epoch: salt === undefined ? undefined : this.epochOf(salt) };
    this.generation = position.generation;
    this.lastSyncAt = now;
    this.reconcile(now);
  }

  private reconcile(now: number): void {
    const replica = this.replica;
    if (!replica || replica.epoch === undefined) return;
    const { epoch } = replica;
    while (this.pending.length > 0) {
      const oldest = this.pending[0] as Pending;
      if (oldest.epoch > epoch || (oldest.epoch === epoch && oldest.end > replica.position.offset)) break;
      this.pending.shift();
      this.onCovered?.(now - oldest.seenAt);
    }
  }

  /** Litestream has reported a replica position and every change seen locally is in it. */
  get caughtUp(): boolean {
    return this.replica !== undefined && this.pending.length === 0;
  }

  lagMs(now: number): number {
    const oldest = this.pending[0];
    return oldest ? Math.max(0, now - oldest.seenAt) : 0;
  }

  status(now: number): DatabaseReplicationStatus {
    return {
      db: this.db,
      lagMs: this.lagMs(now),
      generation: this.generation,
      position: this.replica ? formatPosition(this.replica.position) : undefined,
      lastSyncAt: this.lastSyncAt,
      pendingChanges: this.pending.length,
    };
  }
}
