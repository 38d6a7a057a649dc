/**
 * The snapshot thread's side of a large state's background snapshot (snapshot-thread.ts): through a
 * connection of its own to the agent's state.db, it reads the newest snapshot and the patches after it,
 * builds the new snapshot and writes its chunks, one small transaction each; later it removes the chunks of
 * the snapshot that one replaced. The coordinator's main thread only commits the snapshot's row
 * (state-store.ts): reading and writing ~16 MB of chunk rows there, and the WAL checkpoints those writes
 * set off, stalled every agent of the coordinator for 10-40 ms at a time.
 */
import Database from "better-sqlite3";
import { buildSnapshot, type PatchText, type StoredSnapshot } from "./snapshot-build.js";
import type { SnapshotEncoding } from "./snapshot-codec.js";
import { BUSY_TIMEOUT_MS, JOURNAL_SIZE_LIMIT_BYTES, PAGE_CACHE_KIB } from "./sqlite.js";

/** Set to non-zero (Atomics.store) when the store closes: the thread writes no chunk after it has seen it. */
export type CancelFlag = Int32Array;

export interface WriteJob {
  /** The agent's state.db. */
  file: string;
  /** The snapshot to build on (0: none, from the empty state). */
  previous: number;
  /** The version to snapshot: its patches are committed. */
  through: number;
  compress: boolean;
  chunkBytes: number;
  cancel: CancelFlag;
}

/** A snapshot whose chunks are written (its row is not: the store commits it), or undefined when cancelled. */
export interface WrittenSnapshot {
  version: number;
  encoding: SnapshotEncoding;
  rawBytes: number;
  chunks: number;
  /** JSON text length of the patches it covers. */
  patchBytes: number;
}

export interface DropJob {
  file: string;
  /** Chunks of this version stay even without a snapshot row (one being written); 0: none. */
  keep: number;
  cancel: CancelFlag;
}

type SnapshotRow = { encoding: string; data: Buffer; chunks: number };

/** Between two chunk transactions: the store's own writes to state.db get the lock without waiting. */
const PAUSE_MS = 1;
const pause = new Int32Array(new SharedArrayBuffer(4));

function openStateDb(file: string): Database.Database {
  const db = new Database(file, { fileMustExist: true });
  try {
    // The same settings as the store's connection (sqlite.ts), so chunks are exactly as durable as before.
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    db.pragma("synchronous = NORMAL");
    db.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT_BYTES}`);
    db.pragma(`cache_size = -${PAGE_CACHE_KIB}`);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

/** The newest snapshot and the patches after it, read in one transaction. */
function readRows(db: Database.Database, job: WriteJob): { base: StoredSnapshot | undefined; patches: PatchText[] } {
  const read = db.transaction(() => {
    let base: StoredSnapshot | undefined;
    if (job.previous > 0) {
      const row = db.prepare<[number], SnapshotRow>("SELECT encoding, data, chunks FROM snapshots WHERE version = ?").get(job.previous);
      if (!row) throw new Error(`state snapshot ${job.previous} is missing`);
      const chunk = db.prepare<[number, number], Buffer>("SELECT data FROM snapshot_chunks WHERE version = ? AND seq = ?").pluck();
      const parts = row.chunks === 0 ? [row.data] : Array.from({ length: row.chunks }, (_, seq) => chunk.get(job.previous, seq));
      if (parts.some((part) => part === undefined)) throw new Error(`state snapshot ${job.previous} is missing a chunk`);
      base = { version: job.previous, encoding: row.encoding, parts: parts as Buffer[] };
    }
    const patches = db.prepare<[number, number], PatchText>("SELECT version, ops FROM patches WHERE version > ? AND version <= ? ORDER BY version").raw().all(job.previous, job.through);
    return { base, patches };
  });
  return read();
}

export function writeSnapshot(job: WriteJob): WrittenSnapshot | undefined {
  if (Atomics.load(job.cancel, 0) !== 0) return undefined; // the store closed while this job waited
  const db = openStateDb(job.file);
  try {
    const { base, patches } = readRows(db, job);
    if (Atomics.load(job.cancel, 0) !== 0) return undefined;
    const built = buildSnapshot({ base, patches, compress: job.compress });
    if (built.version !== job.through) throw new Error(`snapshot built version ${built.version}, expected ${job.through}`);
    const insert = db.prepare<[number, number, Uint8Array]>("INSERT OR REPLACE INTO snapshot_chunks (version, seq, data) VALUES (?, ?, ?)");
    // IMMEDIATE: the flag is read holding the write lock, so a store that closed (and its successor's
    // clean-up of chunks without a snapshot) is never followed by one more chunk.
    const writeChunk = db.transaction((seq: number, part: Uint8Array): boolean => {
      if (Atomics.load(job.cancel, 0) !== 0) return false;
      insert.run(built.version, seq, part);
      return true;
    });
    let chunks = 0;
    for (let offset = 0; offset < built.data.length; offset += job.chunkBytes, chunks++) {
      if (chunks > 0) Atomics.wait(pause, 0, 0, PAUSE_MS);
      if (!writeChunk.immediate(chunks, built.data.subarray(offset, offset + job.chunkBytes))) return undefined;
    }
    // The checkpoint of what this thread wrote, here rather than in a commit on the main thread (whose
    // auto-checkpoint is off while this job writes: StateStore.backgroundSnapshot).
    db.pragma("wal_checkpoint(PASSIVE)");
    const patchBytes = patches.reduce((sum, [, ops]) => sum + ops.length, 0);
    return { version: built.version, encoding: built.encoding, rawBytes: built.rawBytes, chunks, patchBytes };
  } finally {
    db.close();
  }
}

/** Deletes the chunks of snapshots that are gone (replaced, or never committed), a few per transaction. */
export function dropOldChunks(job: DropJob): number {
  if (Atomics.load(job.cancel, 0) !== 0) return 0;
  const db = openStateDb(job.file);
  try {
    const remove = db.prepare<[number, number]>(
      "DELETE FROM snapshot_chunks WHERE rowid IN (SELECT rowid FROM snapshot_chunks WHERE version NOT IN (SELECT version FROM snapshots) AND version != ? LIMIT ?)",
    );
    let dropped = 0;
    for (;;) {
      if (Atomics.load(job.cancel, 0) !== 0) return dropped;
      const changes = remove.run(job.keep, 4).changes;
      if (changes === 0) return dropped;
      dropped += changes;
      Atomics.wait(pause, 0, 0, PAUSE_MS);
    }
  } finally {
    db.close();
  }
}
