/**
 * The storage of one agent: three SQLite databases in one directory (by convention
 * `<dataDir>/agents/<agentId>/`): messages.db, state.db, logs.db. docs/storage.md describes the
 * schemas, durability and snapshot policy. One AgentStore (one process) owns a directory at a time.
 */
import fs from "node:fs";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { LogStore } from "./log-store.js";
import { MessageLog } from "./message-log.js";
import { ScheduleStore } from "./schedule-store.js";
import { LOGS_MIGRATIONS, MESSAGES_MIGRATIONS, STATE_MIGRATIONS } from "./migrations.js";
import { checkpointFlags, endCheckpoints, openDatabase, type SqliteDatabase } from "./sqlite.js";
import { SnapshotThread } from "./snapshot-thread.js";
import { StateStore, type StateStoreOptions } from "./state-store.js";

export const MESSAGES_DB = "messages.db";
export const STATE_DB = "state.db";
export const LOGS_DB = "logs.db";
/**
 * How long a live instance stays idle before its databases give their page caches back (releaseMemory):
 * ~35 KiB per connection at AGENT_PAGE_CACHE_PAGES. The next turn re-reads its few pages from the OS cache
 * (~7 µs per turn).
 */
export const IDLE_MEMORY_RELEASE_MS = 1000;
/** A live agent's WALs are checkpointed on the snapshot thread after this many turns. */
export const CHECKPOINT_EVERY_TURNS = 128;

export interface AgentStoreOptions {
  /** The agent's directory; created when missing. */
  dir: string;
  /** Snapshot after this many versions since the last snapshot. Default 1000. */
  snapshotEveryVersions?: number;
  /** Snapshot after this much patch JSON since the last snapshot. Default 4 MiB. */
  snapshotEveryBytes?: number;
  /**
   * ...but only once the patch JSON since the last snapshot is at least this fraction of that
   * snapshot's size, so big states are not rewritten for a few small patches. Default 1/8; 0 turns
   * the guard off.
   */
  snapshotMinPatchRatio?: number;
  /** brotli-compress snapshots of 16 KiB and more. Default true. */
  compressSnapshots?: boolean;
  /**
   * States whose JSON is estimated at this size or more are snapshotted in the background (built and written
   * in 64 KiB chunks by the snapshot thread, snapshot-write.ts) instead of synchronously.
   * Default 1 MiB; Infinity keeps every snapshot synchronous.
   */
  backgroundSnapshotBytes?: number;
  /**
   * The largest an agent's state may grow, in bytes of JSON (state-store.ts): a patch past it is refused.
   * Default DEFAULT_MAX_STATE_BYTES (64 MiB): the state lives in the coordinator's heap, where a JSON of
   * small objects takes up to ~19 times its size, and far below what one string holds (~512 MiB), so every
   * state the store accepts can be snapshotted and sent to the agent in its `init`.
   */
  maxStateBytes?: number;
  /** Called when an automatic snapshot fails (apply() still succeeds; the patch is stored). */
  onSnapshotError?: (err: unknown) => void;
}

export const DEFAULT_MAX_STATE_BYTES = 64 * 1024 * 1024;

export type CompiledAgentStoreOptions = StateStoreOptions & { dir: string };

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !(value > 0)) throw new ConnectError(`${name} must be a positive number`, Code.InvalidArgument);
  return value;
}

export function compileAgentStoreOptions(options: AgentStoreOptions): CompiledAgentStoreOptions {
  if (typeof options.dir !== "string" || options.dir === "") throw new ConnectError("dir is required", Code.InvalidArgument);
  const ratio = options.snapshotMinPatchRatio ?? 1 / 8;
  if (typeof ratio !== "number" || !(ratio >= 0)) throw new ConnectError("snapshotMinPatchRatio must be >= 0", Code.InvalidArgument);
  return {
    dir: options.dir,
    snapshotEveryVersions: positive("snapshotEveryVersions", options.snapshotEveryVersions, 1000),
    snapshotEveryBytes: positive("snapshotEveryBytes", options.snapshotEveryBytes, 4 * 1024 * 1024),
    snapshotMinPatchRatio: ratio,
    compressSnapshots: options.compressSnapshots ?? true,
    backgroundSnapshotBytes: positive("backgroundSnapshotBytes", options.backgroundSnapshotBytes, 1024 * 1024),
    maxStateBytes: positive("maxStateBytes", options.maxStateBytes, DEFAULT_MAX_STATE_BYTES),
    onSnapshotError: options.onSnapshotError,
  };
}

export class AgentStore {
  private closed = false;
  /** Turns since the last background checkpoint was asked for. */
  private turnsSinceCheckpoint = 0;
  private checkpointing: Promise<void> | undefined;
  private readonly checkpointFlags = checkpointFlags();

  private constructor(
    readonly dir: string,
    readonly messages: MessageLog,
    readonly state: StateStore,
    readonly logs: LogStore,
    private readonly databases: readonly SqliteDatabase[],
    /** The agent's schedules, in messages.db. */
    readonly schedules: ScheduleStore,
  ) {}

  /** Runs `fn` with the store of `dir`, opened for this call only (an agent without a live instance). */
  static using<T>(dir: string, fn: (store: AgentStore) => T): T {
    const store = AgentStore.open({ dir });
    let result: T;
    try {
      result = fn(store);
    } catch (err) {
      store.close();
      throw err;
    }
    // An async fn (a state rebuilt on the snapshot thread) keeps the store until it settled.
    if (result instanceof Promise) return result.finally(() => store.close()) as T;
    store.close();
    return result;
  }

  /** Creates the directory and databases if needed, runs migrations, loads the state. */
  static open(options: AgentStoreOptions): AgentStore {
    const compiled = compileAgentStoreOptions(options);
    fs.mkdirSync(compiled.dir, { recursive: true });
    const opened: SqliteDatabase[] = [];
    const open = (name: string, migrations: Parameters<typeof openDatabase>[1]): SqliteDatabase => {
      const db = openDatabase(path.join(compiled.dir, name), migrations);
      opened.push(db);
      return db;
    };
    try {
      const messagesDb = open(MESSAGES_DB, MESSAGES_MIGRATIONS);
      const messages = new MessageLog(messagesDb);
      const state = new StateStore(open(STATE_DB, STATE_MIGRATIONS), compiled);
      const logs = new LogStore(open(LOGS_DB, LOGS_MIGRATIONS));
      return new AgentStore(compiled.dir, messages, state, logs, opened, new ScheduleStore(messagesDb, messages));
    } catch (err) {
      for (const db of opened) db.close();
      throw err;
    }
  }

  /**
   * Makes each database's first write as cheap as its next ones (~1 ms less each): rewrites its user_version
   * unchanged, which creates the write-ahead log now: for stores opened ahead of their agent (warm runners), and
   * while an agent's runtime starts. Best effort: a database that cannot be written fails its next real write.
   */
  prime(): void {
    for (const db of this.databases) {
      try {
        db.pragma(`user_version = ${Number(db.pragma("user_version", { simple: true }))}`);
      } catch {
        // reported by the write that needs it
      }
    }
  }

  /**
   * Frees what SQLite holds for the three databases beyond their open connections and prepared statements
   * (`PRAGMA shrink_memory`: the page caches). Reads nothing and writes nothing: data, durability and the
   * next statement's result are unchanged; only its first page reads come from the OS cache again. Best effort:
   * a connection busy with an open iterator is skipped; no-op once closed.
   */
  releaseMemory(): void {
    if (this.closed) return;
    for (const db of this.databases) {
      try {
        db.pragma("shrink_memory");
      } catch {
        // busy (an iterator is open on it) or closed: nothing to release now
      }
    }
  }

  /**
   * A turn's writes are committed. Every CHECKPOINT_EVERY_TURNS turns the three WALs are checkpointed on the
   * snapshot thread (PASSIVE, through connections of its own), so that a commit on the event loop seldom pays
   * for one: SQLite's own checkpoint, inside the commit that takes a WAL past 1000 pages (4 MiB), stays as the
   * backstop of an agent that writes more than that in 128 turns. Returns the checkpoint it started (tests).
   */
  checkpointSoon(): Promise<void> | undefined {
    this.turnsSinceCheckpoint++;
    if (this.closed || this.checkpointing || this.turnsSinceCheckpoint < CHECKPOINT_EVERY_TURNS) return undefined;
    this.turnsSinceCheckpoint = 0;
    const files = this.databases.map((db) => db.name);
    this.checkpointing = SnapshotThread.acquire()
      .checkpoint(files, this.checkpointFlags)
      .catch(() => undefined) // the thread failed: a later checkpoint (or SQLite's own, or the close's) does it
      .finally(() => {
        this.checkpointing = undefined;
      });
    return this.checkpointing;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Checkpoints and closes the three databases. Idempotent; later calls on the stores throw FailedPrecondition. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    endCheckpoints(this.checkpointFlags);
    let failure: unknown;
    for (const store of [this.messages, this.state, this.logs]) {
      try {
        store.close();
      } catch (err) {
        failure ??= err;
      }
    }
    if (failure !== undefined) throw failure;
  }
}
