/**
 * Opens (and creates or migrates) one agent's Chronicle SQLite file. Schema, version 1:
 *
 *   meta(key PK, value)                       created_at (the schema version is PRAGMA user_version)
 *   iterations(iteration PK, timestamp, kind) one row per recorded iteration; kind 'capture' | 'restore'
 *   blobs(id PK, hash UNIQUE, size, stored_size, chunk_count)
 *                                             one row per distinct content (sha256 hex of the raw bytes)
 *   blob_chunks(blob_id, seq, codec, data)    content in 1 MiB chunks; codec 1 = zlib deflate, 0 = raw
 *                                             (kept raw when deflate does not shrink it)
 *   versions(path, iteration, change, blob_id, size, mtime_ms)  WITHOUT ROWID, PK (path, iteration)
 *                                             one row per file per iteration it changed in; blob_id NULL
 *                                             for deletions and files over maxFileBytes
 *   manifest(path PK, size, mtime_ms, ctime_ms, ino, blob_id, iteration, racy)
 *                                             the tree as of the latest iteration plus the stat values used
 *                                             to skip hashing unchanged files; racy = 1 forces a re-hash
 *
 * WAL, synchronous=NORMAL: a crash never corrupts the file; a power loss may drop the last iterations.
 */
import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { Code, ConnectError } from "@connectrpc/connect";
import { PAGE_CACHE_KIB } from "../store/sqlite.js";

export type Db = Database.Database;

export const SCHEMA_VERSION = 1;

const DDL = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS iterations (
  iteration INTEGER PRIMARY KEY,
  timestamp INTEGER NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('capture', 'restore'))
);
CREATE TABLE IF NOT EXISTS blobs (
  id INTEGER PRIMARY KEY,
  hash TEXT NOT NULL UNIQUE,
  size INTEGER NOT NULL,
  stored_size INTEGER NOT NULL,
  chunk_count INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS blob_chunks (
  blob_id INTEGER NOT NULL REFERENCES blobs(id),
  seq INTEGER NOT NULL,
  codec INTEGER NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY (blob_id, seq)
);
CREATE TABLE IF NOT EXISTS versions (
  path TEXT NOT NULL,
  iteration INTEGER NOT NULL REFERENCES iterations(iteration),
  change TEXT NOT NULL CHECK (change IN ('created', 'modified', 'deleted')),
  blob_id INTEGER REFERENCES blobs(id),
  size INTEGER NOT NULL,
  mtime_ms INTEGER NOT NULL,
  PRIMARY KEY (path, iteration)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS versions_by_iteration ON versions (iteration);
CREATE TABLE IF NOT EXISTS manifest (
  path TEXT PRIMARY KEY,
  size INTEGER NOT NULL,
  mtime_ms REAL NOT NULL,
  ctime_ms REAL NOT NULL,
  ino REAL NOT NULL,
  blob_id INTEGER REFERENCES blobs(id),
  iteration INTEGER NOT NULL,
  racy INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
`;

function isInside(root: string, candidate: string): boolean {
  return candidate === root || candidate.startsWith(root + path.sep);
}

/** The database must live outside the workspace, or the agent could rewrite its own history. */
export function assertDbOutsideWorkspace(workspaceReal: string, dbPath: string): void {
  const dbDir = fs.realpathSync(path.dirname(path.resolve(dbPath)));
  if (isInside(workspaceReal, dbDir)) {
    throw new ConnectError(`chronicle dbPath ${dbPath} is inside the workspace ${workspaceReal}; put it outside`, Code.InvalidArgument);
  }
}

export function openChronicleDb(dbPath: string): Db {
  fs.mkdirSync(path.dirname(path.resolve(dbPath)), { recursive: true });
  const db = new Database(dbPath);
  try {
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = NORMAL");
    db.pragma("busy_timeout = 5000");
    db.pragma(`cache_size = -${PAGE_CACHE_KIB}`); // bounded per connection, as the agent's other databases
    db.pragma("foreign_keys = OFF"); // integrity is kept by the code; FK checks cost on every insert
    const version = db.pragma("user_version", { simple: true });
    if (typeof version === "number" && version > SCHEMA_VERSION) {
      throw new ConnectError(`chronicle db ${dbPath} has schema ${version}, newer than this build (${SCHEMA_VERSION})`, Code.FailedPrecondition);
    }
    db.exec(DDL);
    if (version !== SCHEMA_VERSION) {
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
      db.prepare("INSERT OR IGNORE INTO meta (key, value) VALUES ('created_at', ?)").run(String(Date.now()));
    }
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}
