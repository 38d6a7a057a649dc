/**
 * The append-only part of Chronicle: iterations and per-file versions (tables `iterations`, `versions`).
 * Only a restored agent's reconciliation cuts it back (truncateAfter).
 */
import type { Statement } from "better-sqlite3";
import type { Db } from "./chronicle-db.js";
import { rebuildManifest } from "./manifest.js";
import type { ChangeKind } from "./chronicle-types.js";
import { PreparedOnUse } from "../store/sqlite.js";

export type IterationKind = "capture" | "restore";

export interface VersionRow {
  path: string;
  iteration: number;
  change: ChangeKind;
  blobId: number | null;
  /** sha256 hex, null for deletions and files over maxFileBytes. */
  hash: string | null;
  size: number;
  mtimeMs: number;
  timestamp: number;
}

interface RawVersion {
  path: string;
  iteration: number;
  change: string;
  blob_id: number | null;
  hash: string | null;
  size: number;
  mtime_ms: number;
  timestamp: number;
}

function toChange(value: string): ChangeKind {
  return value === "created" || value === "modified" ? value : "deleted";
}

function toRow(raw: RawVersion): VersionRow {
  return {
    path: raw.path,
    iteration: raw.iteration,
    change: toChange(raw.change),
    blobId: raw.blob_id,
    hash: raw.hash,
    size: raw.size,
    mtimeMs: raw.mtime_ms,
    timestamp: raw.timestamp,
  };
}

const SELECT = `SELECT v.path, v.iteration, v.change, v.blob_id, b.hash, v.size, v.mtime_ms, i.timestamp
  FROM versions v JOIN iterations i ON i.iteration = v.iteration LEFT JOIN blobs b ON b.id = v.blob_id`;

export class VersionLog {
  private readonly statements: PreparedOnUse;

  constructor(private readonly db: Db) {
    this.statements = new PreparedOnUse(db);
  }

  private get maxIteration(): Statement<[], { n: number | null }> {
    return this.statements.get("SELECT max(iteration) AS n FROM iterations");
  }

  private get insertIteration(): Statement<[number, number, IterationKind]> {
    return this.statements.get("INSERT INTO iterations (iteration, timestamp, kind) VALUES (?, ?, ?)");
  }

  private get insertVersion(): Statement<[string, number, ChangeKind, number | null, number, number]> {
    return this.statements.get("INSERT INTO versions (path, iteration, change, blob_id, size, mtime_ms) VALUES (?, ?, ?, ?, ?, ?)");
  }

  private get selectHistory(): Statement<[string], RawVersion> {
    return this.statements.get(`${SELECT} WHERE v.path = ? ORDER BY v.iteration`);
  }

  private get selectAt(): Statement<[string, number], RawVersion> {
    return this.statements.get(`${SELECT} WHERE v.path = ? AND v.iteration <= ? ORDER BY v.iteration DESC LIMIT 1`);
  }

  private get selectChanges(): Statement<[number], RawVersion> {
    return this.statements.get(`${SELECT} WHERE v.iteration = ? ORDER BY v.path`);
  }

  private get selectRawBytes(): Statement<[], { bytes: number | null }> {
    return this.statements.get("SELECT sum(size) AS bytes FROM versions WHERE blob_id IS NOT NULL");
  }

  latestIteration(): number {
    return this.maxIteration.get()?.n ?? 0;
  }

  addIteration(iteration: number, timestamp: number, kind: IterationKind): void {
    this.insertIteration.run(iteration, timestamp, kind);
  }

  addVersion(path: string, iteration: number, change: ChangeKind, blobId: number | null, size: number, mtimeMs: number): void {
    this.insertVersion.run(path, iteration, change, blobId, size, Math.floor(mtimeMs));
  }

  /** Every version of `path`, oldest first (empty when it never existed). */
  history(path: string): VersionRow[] {
    return this.selectHistory.all(path).map(toRow);
  }

  /** The version of `path` in effect at `iteration` (possibly a deletion), or undefined before its creation. */
  at(path: string, iteration: number): VersionRow | undefined {
    const raw = this.selectAt.get(path, iteration);
    return raw ? toRow(raw) : undefined;
  }

  /** What changed in one iteration, by path. */
  changes(iteration: number): VersionRow[] {
    return this.selectChanges.all(iteration).map(toRow);
  }

  /** How many iterations after `iteration` restored files (kind "restore", not a capture). */
  restoresAfter(iteration: number): number {
    return this.db.prepare<[number], number>("SELECT count(*) FROM iterations WHERE iteration > ? AND kind <> 'capture'").pluck().get(iteration) ?? 0;
  }

  /**
   * Forgets every iteration after `iteration` (a restored agent reconciled with its ledger, before Chronicle
   * opens it) and rebuilds the manifest from the newest version of each path (rebuildManifest); returns the
   * iterations removed. Blobs only later versions used stay, unreferenced, as after any restore.
   */
  truncateAfter(iteration: number): number {
    return this.db.transaction(() => {
      this.db.prepare<[number]>("DELETE FROM versions WHERE iteration > ?").run(iteration);
      const dropped = this.db.prepare<[number]>("DELETE FROM iterations WHERE iteration > ?").run(iteration).changes;
      rebuildManifest(this.db);
      return dropped;
    })();
  }

  /** Sum of the sizes of every stored version: the cost of keeping a full copy per version. */
  rawVersionBytes(): number {
    return this.selectRawBytes.get()?.bytes ?? 0;
  }
}
