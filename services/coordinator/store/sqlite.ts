/**
 * Opening and closing the per-agent SQLite files. Every database gets the same settings:
 * WAL journal, synchronous=NORMAL, a busy timeout, a cap on the WAL file size after checkpoints, a small
 * page cache (AGENT_PAGE_CACHE_PAGES unless the caller asks for another), then its migrations (migrations.ts).
 */
import Database from "better-sqlite3";
import { Code, ConnectError } from "@connectrpc/connect";
import { migrate, type Migration } from "./migrations.js";

export type SqliteDatabase = Database.Database;

/** How long a statement waits for a lock held by another connection before SQLITE_BUSY. */
export const BUSY_TIMEOUT_MS = 5000;
/** After a checkpoint the WAL file is truncated to at most this size (it can grow past it in between). */
export const JOURNAL_SIZE_LIMIT_BYTES = 16 * 1024 * 1024;
/**
 * Most page cache one connection keeps, for connections other than an agent's own three (Chronicle, snapshot
 * writes). better-sqlite3's build defaults to 16 MB per connection. 2 MiB measured the same in the store
 * benchmark (appends, deltas, replay of 100k messages, opening a 50 MB state).
 */
export const PAGE_CACHE_KIB = 2048;
/**
 * Page cache of each of an agent's own connections (messages.db, state.db, logs.db), in pages (32 KiB): set
 * before the first page is read, because SQLite's first allocation for a cache is min(20, cache size) pages
 * (~86 KiB at 20), held while the connection is open. A turn touches a few pages per database; longer reads
 * come from the OS page cache and big writes spill to the WAL past it. Measured against 2 MiB on the same
 * stores: a turn's writes (also with 200k messages), 500 messages read from a 100k history, a patch to a
 * 20k-element state, all equal; 150 KiB less per agent (docs/performance.md, "Memory per live instance").
 */
export const AGENT_PAGE_CACHE_PAGES = 8;

/** `cacheSize` is PRAGMA cache_size's: pages when positive, KiB when negative. */
export function openDatabase(file: string, migrations: readonly Migration[], cacheSize = AGENT_PAGE_CACHE_PAGES): SqliteDatabase {
  let db: SqliteDatabase;
  try {
    db = new Database(file);
  } catch (err) {
    throw storeError(err, `open ${file}`);
  }
  try {
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    // Setting the size reads the schema (page 1), which makes the cache's first allocation at the default
    // size; shrink_memory drops it, so the next read allocates for `cacheSize`.
    db.pragma(`cache_size = ${cacheSize}`);
    db.pragma("shrink_memory");
    const mode = db.pragma("journal_mode = WAL", { simple: true });
    if (mode !== "wal") throw new ConnectError(`${file}: cannot switch to WAL (journal_mode=${String(mode)})`, Code.Internal);
    db.pragma("synchronous = NORMAL");
    db.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT_BYTES}`);
    migrate(db, migrations, file);
    return db;
  } catch (err) {
    db.close();
    throw storeError(err, `open ${file}`);
  }
}

/**
 * What a store and the snapshot thread share about the store's background checkpoints (Atomics on a
 * SharedArrayBuffer): [closed, busy]. The thread sets `busy` before it opens a file and then checks `closed`;
 * the store sets `closed` before it closes and then waits while `busy`. So the thread never opens a file of a
 * closed store, and a store never closes while the thread has one of its files open: `close()` keeps its
 * promise that the WAL is checkpointed into the main file and gone when it returns.
 */
export type CheckpointFlags = Int32Array;
const CLOSED = 0;
const BUSY = 1;
/** Longest a store's close waits for a checkpoint in flight (one takes ~2 ms). */
const CLOSE_WAIT_MS = 1000;

export function checkpointFlags(): CheckpointFlags {
  return new Int32Array(new SharedArrayBuffer(8));
}

/**
 * The snapshot thread's side: a PASSIVE checkpoint of each file's WAL through a connection of its own, which
 * copies what it can without waiting for the store's connection (it goes on reading and committing
 * meanwhile). Stops at the store's close.
 */
export function checkpointFiles(files: readonly string[], flags: CheckpointFlags): void {
  for (const file of files) {
    Atomics.store(flags, BUSY, 1);
    try {
      if (Atomics.load(flags, CLOSED) !== 0) break;
      checkpointFile(file);
    } catch {
      // busy or gone: the next checkpoint (or SQLite's own, or the close's) does it
    } finally {
      Atomics.store(flags, BUSY, 0);
      Atomics.notify(flags, BUSY);
    }
  }
}

function checkpointFile(file: string): void {
  const db = new Database(file, { fileMustExist: true });
  try {
    db.pragma("busy_timeout = 0");
    db.pragma("wal_checkpoint(PASSIVE)");
  } finally {
    db.close();
  }
}

/** The store's side, before it closes its connections: no checkpoint starts after this, and one in flight is over. */
export function endCheckpoints(flags: CheckpointFlags): void {
  Atomics.store(flags, CLOSED, 1);
  const deadline = Date.now() + CLOSE_WAIT_MS;
  while (Atomics.load(flags, BUSY) !== 0 && Date.now() < deadline) Atomics.wait(flags, BUSY, 1, 50);
}

/**
 * Checkpoints the WAL into the main file (truncating it) and closes. Safe to call twice. The checkpoint
 * does not wait for readers: Litestream holds a read transaction while it still uploads (a background
 * upload after release), and waiting the busy timeout per database would stall the event loop.
 */
export function closeDatabase(db: SqliteDatabase): void {
  if (!db.open) return;
  try {
    db.pragma("busy_timeout = 0");
    db.pragma("wal_checkpoint(TRUNCATE)");
  } finally {
    db.close();
  }
}

function codeFor(sqliteCode: string): Code {
  if (sqliteCode.startsWith("SQLITE_BUSY") || sqliteCode.startsWith("SQLITE_LOCKED")) return Code.Unavailable;
  if (sqliteCode === "SQLITE_FULL" || sqliteCode === "SQLITE_TOOBIG") return Code.ResourceExhausted;
  if (sqliteCode.startsWith("SQLITE_CORRUPT") || sqliteCode === "SQLITE_NOTADB") return Code.DataLoss;
  // Another writer took the same seq / version: only one store may own a directory.
  if (sqliteCode === "SQLITE_CONSTRAINT_PRIMARYKEY") return Code.Aborted;
  if (sqliteCode.startsWith("SQLITE_CONSTRAINT")) return Code.InvalidArgument;
  return Code.Internal;
}

/** Maps a SQLite failure to a ConnectError with a real code; other errors pass through. */
export function storeError(err: unknown, what: string): unknown {
  // Duck-typed: SqliteError may come from another realm (e.g. under jest), where instanceof fails.
  if (err instanceof ConnectError || typeof err !== "object" || err === null) return err;
  const { code, message } = err as { code?: unknown; message?: unknown };
  if (typeof code !== "string" || !code.startsWith("SQLITE_")) return err;
  return new ConnectError(`${what}: ${String(message)}`, codeFor(code), undefined, undefined, err);
}

export function closedError(what: string): ConnectError {
  return new ConnectError(`${what} is closed`, Code.FailedPrecondition);
}

/**
 * Statements prepared at their first use, each once. A prepared statement holds ~3 KiB (measured) for as
 * long as its connection is open, and every live agent keeps its databases open: statements most agents
 * never run (captures of files, snapshots, schedules) cost nothing until one does.
 */
export class PreparedOnUse {
  private readonly statements = new Map<string, Database.Statement<unknown[], unknown>>();

  constructor(private readonly db: SqliteDatabase) {}

  get<Params extends unknown[] = [], Row = unknown>(sql: string): Database.Statement<Params, Row> {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare<unknown[], unknown>(sql);
      this.statements.set(sql, statement);
    }
    return statement as unknown as Database.Statement<Params, Row>;
  }
}
