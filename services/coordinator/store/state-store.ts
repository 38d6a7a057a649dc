/**
 * state.db: an agent's state as a chain of RFC 6902 patches (one row per version) plus periodic
 * snapshots. The current state lives in memory, loaded on first use (newest snapshot + the patches
 * after it), so opening an agent only to read its messages or logs does not parse its state.
 * See docs/storage.md for the snapshot and pruning policy.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { JsonObject, JsonPatchOp } from "../../shared/json.js";
import { JsonPatchError } from "../../shared/json-patch.js";
import { applyAtomically, type AppliedPatch } from "./apply-atomically.js";
import { encodeSnapshot } from "./snapshot-codec.js";
import { decodeState, replayPatches, type PatchText, type StoredSnapshot } from "./snapshot-build.js";
import { SnapshotThread } from "./snapshot-thread.js";
import type { WrittenSnapshot } from "./snapshot-write.js";
import { assembleStatePieces } from "./state-pieces.js";
import { closeDatabase, closedError, storeError, type SqliteDatabase } from "./sqlite.js";

/** A background snapshot is written this many bytes per transaction, by the snapshot thread. */
export const SNAPSHOT_CHUNK_BYTES = 64 * 1024;

export interface StatePatchRow {
  version: number;
  ops: JsonPatchOp[];
  /** Epoch milliseconds. */
  timestamp: number;
  instanceId: string;
  turn: number;
}

export interface PatchMeta {
  instanceId: string;
  turn: number;
  /** Epoch milliseconds; defaults to now. */
  timestamp?: number;
}

export interface StateStoreOptions {
  snapshotEveryVersions: number;
  snapshotEveryBytes: number;
  snapshotMinPatchRatio: number;
  compressSnapshots: boolean;
  /**
   * States whose JSON is estimated at this size or more are snapshotted in the background: built on the
   * snapshot thread from state.db's rows and written there in chunks; only the snapshot's row is written here.
   */
  backgroundSnapshotBytes: number;
  /**
   * The largest the state may grow, in JSON bytes, estimated as the newest snapshot's size plus the stored
   * patches since (a patch's `copy` ops are stored as the `add`s they amount to); a patch past it is refused.
   */
  maxStateBytes: number;
  onSnapshotError: ((err: unknown) => void) | undefined;
}

export interface StateStoreInfo {
  version: number;
  /** Version of the newest snapshot, 0 when there is none. */
  snapshotVersion: number;
  /** UTF-8 size of the newest snapshot's JSON. */
  snapshotRawBytes: number;
  /** Patches with version <= this are gone; patchesSince(v) needs v >= prunedThrough. */
  prunedThrough: number;
  versionsSinceSnapshot: number;
  /** JSON text length of the patches since the newest snapshot. */
  patchBytesSinceSnapshot: number;
}

type PatchDbRow = [version: number, ops: string, instanceId: string, turn: number, timestamp: number];
type SnapshotDbRow = { version: number; encoding: string; data: Buffer; raw_bytes: number; chunks: number };

const yieldTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

function checkMeta(meta: PatchMeta): number {
  const timestamp = meta.timestamp ?? Date.now();
  if (typeof meta.instanceId !== "string") throw new ConnectError("instanceId must be a string", Code.InvalidArgument);
  if (!Number.isSafeInteger(meta.turn) || meta.turn < 0) throw new ConnectError("turn must be a non-negative integer", Code.InvalidArgument);
  if (!Number.isSafeInteger(timestamp)) throw new ConnectError("timestamp must be integer epoch milliseconds", Code.InvalidArgument);
  return timestamp;
}

/**
 * The text a patch with `copy` ops is stored as: the patch as it was sent (`text`), each copy replaced by the
 * `add` of the JSON it copied (`copies`, recorded as each copy ran).
 */
function storedPatchText(text: string, copies: AppliedPatch["copies"]): string {
  const ops = JSON.parse(text) as JsonPatchOp[];
  const copied = new Map(copies.map((copy) => [copy.index, copy.json]));
  const parts = ops.map((op, index) => {
    const json = copied.get(index);
    return json === undefined ? JSON.stringify(op) : `{"op":"add","path":${JSON.stringify(op.path)},"value":${json}}`;
  });
  return `[${parts.join(",")}]`;
}

/** True when applying `op` puts no caller-owned object into the state and JSON keeps its value. */
function ownsNothing(op: JsonPatchOp): boolean {
  if (typeof op !== "object" || op === null || !("value" in op)) return typeof op === "object" && op !== null;
  const value: unknown = op.value;
  switch (typeof value) {
    case "string":
    case "boolean":
      return true;
    case "number":
      return Number.isFinite(value) && !Object.is(value, -0);
    default:
      return value === null;
  }
}

export class StateStore {
  private state: JsonObject = {};
  private currentVersion = 0;
  private snapshotVersion = 0;
  private snapshotRawBytes = 0;
  private prunedThrough = 0;
  private versionsSinceSnapshot = 0;
  private patchBytesSinceSnapshot = 0;
  /** patchBytesSinceSnapshot for the state's size limit: not reset by a failed snapshot (the state did not shrink). */
  private grownSinceSnapshot = 0;
  private loaded = false;
  /** The version a background snapshot is being built or written for, 0 when none is. */
  private building = 0;
  /** Set when the store closes: the snapshot thread then stops writing this store's chunks. */
  private readonly cancel = new Int32Array(new SharedArrayBuffer(4));
  private readonly insertPatch;
  private readonly selectPatches;
  private readonly writeSnapshot;
  private readonly selectChunk;
  private readonly commitChunked;
  private readonly deleteOldChunks;

  constructor(
    private readonly db: SqliteDatabase,
    private readonly options: StateStoreOptions,
  ) {
    this.insertPatch = db.prepare<[number, string, string, number, number]>("INSERT INTO patches (version, ops, instance_id, turn, timestamp) VALUES (?, ?, ?, ?, ?)");
    this.selectPatches = db.prepare<[number, number], PatchDbRow>("SELECT version, ops, instance_id, turn, timestamp FROM patches WHERE version > ? ORDER BY version LIMIT ?").raw();
    const insertSnapshot = db.prepare<[number, string, Buffer, number, number]>("INSERT INTO snapshots (version, encoding, data, raw_bytes, timestamp) VALUES (?, ?, ?, ?, ?)");
    const deleteOldSnapshots = db.prepare<[number]>("DELETE FROM snapshots WHERE version < ?");
    const prunePatches = db.prepare<[number]>("DELETE FROM patches WHERE version <= ?");
    this.writeSnapshot = db.transaction((version: number, encoding: string, data: Buffer, rawBytes: number, pruneThrough: number) => {
      insertSnapshot.run(version, encoding, data, rawBytes, Date.now());
      deleteOldSnapshots.run(version);
      prunePatches.run(pruneThrough);
    });
    this.selectChunk = db.prepare<[number, number], Buffer>("SELECT data FROM snapshot_chunks WHERE version = ? AND seq = ?").pluck();
    const insertChunked = db.prepare<[number, string, number, number, number]>("INSERT INTO snapshots (version, encoding, data, raw_bytes, timestamp, chunks) VALUES (?, ?, x'', ?, ?, ?)");
    const countChunks = db.prepare<[number, number], number>("SELECT count(*) FROM snapshot_chunks WHERE version = ? AND seq < ?").pluck();
    this.commitChunked = db.transaction((written: WrittenSnapshot, pruneThrough: number) => {
      // Never a row without all its chunks (another store's clean-up of row-less chunks could have run meanwhile).
      const stored = countChunks.get(written.version, written.chunks) ?? 0;
      if (stored !== written.chunks) throw new Error(`state snapshot ${written.version} has ${stored} of its ${written.chunks} chunks`);
      insertChunked.run(written.version, written.encoding, written.rawBytes, Date.now(), written.chunks);
      deleteOldSnapshots.run(written.version);
      prunePatches.run(pruneThrough);
    });
    // A few rows at a time: deleting a large snapshot's chunks in one go would stall the event loop.
    this.deleteOldChunks = db.prepare<[number, number]>(
      "DELETE FROM snapshot_chunks WHERE rowid IN (SELECT rowid FROM snapshot_chunks WHERE version NOT IN (SELECT version FROM snapshots) AND version != ? LIMIT ?)",
    );
  }

  /** The number of patches ever applied; 0 for a brand-new agent. */
  version(): number {
    return this.current().version;
  }

  /**
   * The live in-memory state, not a copy (copying a 50 MB state per call is too slow). Callers must
   * treat it as read-only and must not keep it across apply(): it is patched in place, and an op on
   * the root replaces it. Serialize it (JSON.stringify) or structuredClone it to keep a copy.
   */
  current(): { version: number; state: JsonObject } {
    this.ready();
    return { version: this.currentVersion, state: this.state };
  }

  /**
   * Applies `ops` to the in-memory state all-or-nothing (a failing patch throws JsonPatchError and
   * leaves state and database unchanged), stores them as the next version in their own transaction
   * (durable against a process crash once this returns), and snapshots when the thresholds pass.
   * The ops are serialized here; the state keeps its own copy of their values.
   */
  apply(ops: JsonPatchOp[], meta: PatchMeta): StatePatchRow {
    this.ready();
    const timestamp = checkMeta(meta);
    if (!Array.isArray(ops)) throw new JsonPatchError("a patch must be an array of operations");
    let text: string;
    try {
      text = JSON.stringify(ops);
    } catch (err) {
      throw new JsonPatchError(`patch is not JSON: ${err instanceof Error ? err.message : String(err)}`);
    }
    // The state must not share objects with the caller: parse the stored text back, unless every
    // value is a primitive that survives JSON unchanged (the common case; saves a parse).
    const owned = ops.every(ownsNothing) ? ops : (JSON.parse(text) as JsonPatchOp[]);
    // What the state may still grow by, in UTF-8 bytes as snapshots measure it: an overestimate (what patches
    // removed is not subtracted) until the next snapshot measures it again. Copies count: they are stored as the
    // adds they amount to. Over it, only patches that cannot grow the state (remove, test) still apply.
    let bytes = Buffer.byteLength(text);
    const room = this.options.maxStateBytes - this.snapshotRawBytes - this.grownSinceSnapshot - bytes;
    if (room < 0 && !owned.every((op) => op.op === "remove" || op.op === "test")) {
      // Measured again by a snapshot when patches came since the last one (their removals may have made room).
      if (this.grownSinceSnapshot > 0) this.autoSnapshot();
      throw this.tooLarge();
    }
    const applied = applyAtomically(this.state, owned, { budget: Math.max(0, room) });
    if (applied.copies.length > 0) {
      try {
        const stored = storedPatchText(text, applied.copies);
        const storedBytes = Buffer.byteLength(stored);
        // The copies' exact JSON (escapes included) must fit too.
        if (storedBytes - bytes > room) throw this.tooLarge();
        [text, bytes] = [stored, storedBytes];
      } catch (err) {
        this.state = applied.rollback();
        throw err;
      }
    }
    const version = this.currentVersion + 1;
    try {
      this.insertPatch.run(version, text, meta.instanceId, meta.turn, timestamp);
    } catch (err) {
      this.state = applied.rollback();
      throw storeError(err, "store state patch");
    }
    this.state = applied.state;
    this.currentVersion = version;
    this.versionsSinceSnapshot++;
    this.patchBytesSinceSnapshot += bytes;
    this.grownSinceSnapshot += bytes;
    if (this.snapshotDue()) this.autoSnapshot();
    return { version, ops, timestamp, instanceId: meta.instanceId, turn: meta.turn };
  }

  /**
   * Patches with version > `version`, ascending (at most `limit`). Throws OutOfRange when some of
   * them were pruned or when `version` is ahead of the store: the caller must fetch the full state.
   */
  patchesSince(version: number, limit?: number): StatePatchRow[] {
    this.ready();
    if (!Number.isSafeInteger(version) || version < 0) {
      throw new ConnectError(`version must be a non-negative integer, got ${version}`, Code.InvalidArgument);
    }
    if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 0)) {
      throw new ConnectError(`limit must be a non-negative integer, got ${limit}`, Code.InvalidArgument);
    }
    if (version > this.currentVersion) {
      throw new ConnectError(`state version ${version} is ahead of the stored version ${this.currentVersion}; fetch the full state`, Code.OutOfRange);
    }
    if (version < this.prunedThrough) {
      throw new ConnectError(`state patches up to version ${this.prunedThrough} were pruned (asked for those after ${version}); fetch the full state`, Code.OutOfRange);
    }
    if (limit === 0) return [];
    return this.selectPatches.all(version, limit ?? -1).map(([v, ops, instanceId, turn, timestamp]) => ({
      version: v,
      ops: JSON.parse(ops) as JsonPatchOp[],
      timestamp,
      instanceId,
      turn,
    }));
  }

  /**
   * The state as it was at `version` (0: the empty state before the first patch), and the patch that made
   * it while that is kept. Rebuilt from the newest snapshot at or before it (or from the empty state while
   * no snapshot has pruned anything) and the stored patches after that; a large state is rebuilt on the
   * snapshot thread. A version older than the history kept is FailedPrecondition, one after the current
   * version OutOfRange. At the current version this is the live state (read-only, as for current()).
   */
  async stateAt(version: number): Promise<{ version: number; state: JsonObject; patch: StatePatchRow | undefined }> {
    this.ready();
    if (!Number.isSafeInteger(version) || version < 0) throw new ConnectError(`version must be a non-negative integer, got ${version}`, Code.InvalidArgument);
    if (version > this.currentVersion) throw new ConnectError(`state version ${version} is after the current version ${this.currentVersion}`, Code.OutOfRange);
    const patch = version > this.prunedThrough ? this.patchesSince(version - 1, 1)[0] : undefined;
    if (version === this.currentVersion) return { version, state: this.state, patch };
    // A snapshot written while this reads the older one replaces it: read again from the new one.
    for (let attempt = 0; ; attempt++) {
      const base = this.snapshotVersion > 0 && this.snapshotVersion <= version ? this.snapshotVersion : this.prunedThrough === 0 ? 0 : undefined;
      if (base === undefined) {
        throw new ConnectError(`state versions before ${this.snapshotVersion} are no longer kept (asked for ${version}); see docs/storage.md#snapshot-policy`, Code.FailedPrecondition);
      }
      try {
        const snapshot = base > 0 ? await this.readSnapshot(base) : undefined;
        if (!this.db.open) throw closedError("state store");
        const patches = this.selectPatchTexts(base, version);
        if (this.snapshotRawBytes + this.patchBytesSinceSnapshot < this.options.backgroundSnapshotBytes) {
          return { version, state: replayPatches(snapshot ? decodeState(snapshot) : {}, base, patches).state, patch };
        }
        const loaded = await SnapshotThread.acquire().load({ base: snapshot, patches, json: false });
        return { version, state: await assembleStatePieces(loaded.plan), patch };
      } catch (err) {
        if (attempt < 2 && this.db.open && this.snapshotVersion !== base) continue;
        throw storeError(err, `rebuild state version ${version}`);
      }
    }
  }

  /**
   * Loads a large state (its snapshot and patches `backgroundSnapshotBytes` or more) without stalling the
   * event loop: decoded, replayed and serialized on the snapshot thread, then assembled here a few pieces
   * per event-loop turn. Returns the version and the state's JSON (what the agent's `init` carries) when it
   * loaded it so; undefined when the state is small or was loaded already (current() loads those at once).
   * A load the thread cannot do (a corrupt row) is left to the synchronous load, which names the damage.
   */
  async loadInBackground(signal?: AbortSignal): Promise<{ version: number; json: Uint8Array } | undefined> {
    if (!this.db.open) throw closedError("state store");
    if (this.loaded) return undefined;
    const snapshot = this.selectSnapshot();
    const after = snapshot?.version ?? 0;
    const patchChars = this.db.prepare<[number], number>("SELECT coalesce(sum(length(ops)), 0) FROM patches WHERE version > ?").pluck().get(after) ?? 0;
    if ((snapshot?.raw_bytes ?? 0) + patchChars < this.options.backgroundSnapshotBytes) return undefined;
    let loaded;
    let state: JsonObject;
    try {
      const base = snapshot && (await this.readSnapshot(snapshot.version));
      if (!this.db.open || this.loaded) return undefined;
      loaded = await SnapshotThread.acquire().load({ base, patches: this.selectPatchTexts(after, Number.MAX_SAFE_INTEGER), json: true });
      state = await assembleStatePieces(loaded.plan, signal ? { signal } : {});
    } catch (err) {
      signal?.throwIfAborted();
      if (!this.db.open || this.loaded) throw err;
      this.load(); // throws the stored data's own error, or loads what the thread could not
      return undefined;
    }
    // Loaded synchronously meanwhile (a read of the state while this one ran): that copy is live already.
    if (!this.db.open || this.loaded) return undefined;
    this.adopt(state, loaded.version, snapshot, loaded.patchBytes);
    return { version: loaded.version, json: loaded.json };
  }

  /** The newest version state.db holds (its newest patch or snapshot), read without loading the state. */
  storedVersion(): number {
    if (!this.db.open) throw closedError("state store");
    return this.db.prepare<[], number | null>("SELECT max(v) FROM (SELECT max(version) AS v FROM patches UNION ALL SELECT max(version) FROM snapshots)").pluck().get() ?? 0;
  }

  /** The version of the newest snapshot (0: none), read without loading the state. */
  newestSnapshotVersion(): number {
    if (!this.db.open) throw closedError("state store");
    return this.selectSnapshot()?.version ?? 0;
  }

  /**
   * Removes the patches after `version` (a restored agent reconciled with its ledger, before anything loads
   * the state); returns how many. FailedPrecondition once the state is loaded: the live copy would differ.
   */
  dropPatchesAfter(version: number): number {
    if (!this.db.open) throw closedError("state store");
    if (this.loaded) throw new ConnectError("patches can only be dropped before the state is loaded", Code.FailedPrecondition);
    return this.db.prepare<[number]>("DELETE FROM patches WHERE version > ?").run(version).changes;
  }

  /** Writes a snapshot of the current version now (no-op if there is one already) and prunes. */
  snapshot(): void {
    this.ready();
    if (this.currentVersion === this.snapshotVersion) return;
    const encoded = encodeSnapshot(JSON.stringify(this.state), this.options.compressSnapshots);
    // Keep the patches after the previous snapshot, so clients one interval behind can catch up.
    const pruneThrough = this.snapshotVersion;
    try {
      this.writeSnapshot(this.currentVersion, encoded.encoding, encoded.data, encoded.rawBytes, pruneThrough);
    } catch (err) {
      throw storeError(err, "write state snapshot");
    }
    this.prunedThrough = Math.max(this.prunedThrough, pruneThrough);
    this.snapshotVersion = this.currentVersion;
    this.snapshotRawBytes = encoded.rawBytes;
    this.versionsSinceSnapshot = 0;
    this.patchBytesSinceSnapshot = 0;
    this.grownSinceSnapshot = 0;
    void this.dropOldChunks();
  }

  info(): StateStoreInfo {
    this.ready();
    return {
      version: this.currentVersion,
      snapshotVersion: this.snapshotVersion,
      snapshotRawBytes: this.snapshotRawBytes,
      prunedThrough: this.prunedThrough,
      versionsSinceSnapshot: this.versionsSinceSnapshot,
      patchBytesSinceSnapshot: this.patchBytesSinceSnapshot,
    };
  }

  close(): void {
    Atomics.store(this.cancel, 0, 1);
    closeDatabase(this.db);
  }

  /**
   * A threshold passed, and the patches since the last snapshot are big enough relative to it that
   * replaying them on open would cost more than writing a fresh one (snapshotMinPatchRatio).
   */
  private tooLarge(): JsonPatchError {
    return new JsonPatchError(`the patch would take the state past its limit of ${this.options.maxStateBytes} bytes of JSON; it was refused (docs/storage.md#state-size)`);
  }

  private snapshotDue(): boolean {
    const { snapshotEveryVersions, snapshotEveryBytes, snapshotMinPatchRatio } = this.options;
    if (this.versionsSinceSnapshot < snapshotEveryVersions && this.patchBytesSinceSnapshot < snapshotEveryBytes) return false;
    return this.patchBytesSinceSnapshot >= this.snapshotRawBytes * snapshotMinPatchRatio;
  }

  /**
   * A failed automatic snapshot does not fail apply(): the patch is stored; retry one interval later.
   * A large state's snapshot is built in the background; until it is stored, snapshots wait for it.
   */
  private autoSnapshot(): void {
    if (this.building > 0) return;
    if (this.snapshotRawBytes + this.patchBytesSinceSnapshot >= this.options.backgroundSnapshotBytes && !this.db.memory) {
      void this.backgroundSnapshot();
      return;
    }
    try {
      this.snapshot();
    } catch (err) {
      this.snapshotFailed(err);
    }
  }

  private snapshotFailed(err: unknown): void {
    this.versionsSinceSnapshot = 0;
    this.patchBytesSinceSnapshot = 0;
    this.options.onSnapshotError?.(err);
  }

  /**
   * The snapshot of the current version, built on the snapshot thread from the stored rows (the newest
   * snapshot and the patches after it: the live state is not touched) and written there in chunks, each its
   * own transaction (snapshot-write.ts); only the snapshot's row is committed here, with the prune, as for a
   * synchronous snapshot. Patches applied meanwhile stay on top of it. Abandoned when the store closes or
   * another snapshot was written meanwhile; chunks a crash left behind are removed at the next load.
   */
  private async backgroundSnapshot(): Promise<void> {
    const previous = this.snapshotVersion;
    const version = this.currentVersion;
    this.building = version;
    const stillCurrent = () => this.db.open && this.snapshotVersion === previous;
    const thread = SnapshotThread.acquire();
    // The thread checkpoints what it writes: a commit here must not copy its chunks into state.db on this thread.
    const autoCheckpoint = Number(this.db.pragma("wal_autocheckpoint", { simple: true }));
    this.db.pragma("wal_autocheckpoint = 0");
    try {
      const job = { file: this.db.name, previous, through: version, compress: this.options.compressSnapshots, chunkBytes: SNAPSHOT_CHUNK_BYTES, cancel: this.cancel };
      const written = await thread.write(job);
      if (!written || !stillCurrent()) return;
      this.commitChunked(written, previous);
      this.prunedThrough = Math.max(this.prunedThrough, previous);
      this.snapshotVersion = version;
      this.snapshotRawBytes = written.rawBytes;
      this.versionsSinceSnapshot = this.currentVersion - version;
      this.patchBytesSinceSnapshot = Math.max(0, this.patchBytesSinceSnapshot - written.patchBytes);
      this.grownSinceSnapshot = Math.max(0, this.grownSinceSnapshot - written.patchBytes);
    } catch (err) {
      if (stillCurrent()) this.snapshotFailed(storeError(err, "write state snapshot"));
    } finally {
      this.building = 0;
      if (this.db.open) this.db.pragma(`wal_autocheckpoint = ${autoCheckpoint}`);
      // The replaced snapshot's chunks, or this one's when it was abandoned: removed by the thread too
      // (acquired again: the one that wrote may have died).
      if (this.db.open) {
        SnapshotThread.acquire()
          .drop({ file: this.db.name, keep: 0, cancel: this.cancel })
          .catch((err: unknown) => {
            if (this.db.open) this.options.onSnapshotError?.(storeError(err, "remove old snapshot chunks"));
          });
      }
    }
  }

  /** Deletes the chunks of snapshots that are gone (replaced, or never committed), a few per turn. */
  private async dropOldChunks(): Promise<void> {
    try {
      while (this.db.open && this.deleteOldChunks.run(this.building, 4).changes > 0) await yieldTurn();
    } catch (err) {
      this.options.onSnapshotError?.(storeError(err, "remove old snapshot chunks"));
    }
  }

  /** A stored snapshot's bytes, its chunks read one per event-loop turn. */
  private async readSnapshot(version: number): Promise<StoredSnapshot | undefined> {
    const row = this.selectSnapshot(version);
    if (!row) throw new ConnectError(`state snapshot ${version} is missing`, Code.DataLoss);
    if (row.chunks === 0) return { version, encoding: row.encoding, parts: [row.data] };
    const parts: Buffer[] = [];
    for (let seq = 0; seq < row.chunks; seq++) {
      await yieldTurn();
      if (!this.db.open) return undefined;
      parts.push(this.chunk(version, seq));
    }
    return { version, encoding: row.encoding, parts };
  }

  private chunk(version: number, seq: number): Buffer {
    const data = this.selectChunk.get(version, seq);
    if (!data) throw new ConnectError(`state snapshot ${version} is missing chunk ${seq}`, Code.DataLoss);
    return data;
  }

  private selectSnapshot(version?: number): SnapshotDbRow | undefined {
    const columns = "SELECT version, encoding, data, raw_bytes, chunks FROM snapshots";
    return version === undefined
      ? this.db.prepare<[], SnapshotDbRow>(`${columns} ORDER BY version DESC LIMIT 1`).get()
      : this.db.prepare<[number], SnapshotDbRow>(`${columns} WHERE version = ?`).get(version);
  }

  private selectPatchTexts(after: number, through: number): PatchText[] {
    return this.db.prepare<[number, number], PatchText>("SELECT version, ops FROM patches WHERE version > ? AND version <= ? ORDER BY version").raw().all(after, through);
  }

  /**
   * Loads the state if that has not happened yet (the first call pays for it; a DataLoss error
   * repeats on every call). Throws FailedPrecondition once closed.
   */
  private ready(): void {
    if (!this.db.open) throw closedError("state store");
    if (!this.loaded) this.load();
  }

  /** Newest snapshot + the patches after it; assigns the fields only once everything loaded. */
  private load(): void {
    const snapshot = this.selectSnapshot();
    const base: StoredSnapshot | undefined = snapshot && {
      version: snapshot.version,
      encoding: snapshot.encoding,
      parts: snapshot.chunks === 0 ? [snapshot.data] : Array.from({ length: snapshot.chunks }, (_, seq) => this.chunk(snapshot.version, seq)),
    };
    const replay = this.db.prepare<[number], PatchText>("SELECT version, ops FROM patches WHERE version > ? ORDER BY version").raw();
    const { state, version, patchBytes } = replayPatches(base ? decodeState(base) : {}, snapshot?.version ?? 0, replay.iterate(snapshot?.version ?? 0));
    this.adopt(state, version, snapshot, patchBytes);
  }

  /** Makes a loaded state the live one. */
  private adopt(state: JsonObject, version: number, snapshot: SnapshotDbRow | undefined, patchBytes: number): void {
    const first = this.db.prepare<[], number | null>("SELECT min(version) FROM patches").pluck().get() ?? null;
    this.state = state;
    this.currentVersion = version;
    this.snapshotVersion = snapshot?.version ?? 0;
    this.snapshotRawBytes = snapshot?.raw_bytes ?? 0;
    this.versionsSinceSnapshot = version - this.snapshotVersion;
    this.patchBytesSinceSnapshot = patchBytes;
    this.grownSinceSnapshot = patchBytes;
    this.prunedThrough = first === null ? version : first - 1;
    this.loaded = true;
    void this.dropOldChunks(); // of a snapshot a crash left half written
  }
}
