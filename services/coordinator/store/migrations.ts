/**
 * Schema migrations for the three per-agent databases. Each database has an ordered list; entry i
 * takes the schema from version i to i + 1, and PRAGMA user_version records how many have run.
 * Rules: never edit or reorder a shipped entry, only append; one migration runs inside the same
 * transaction as its user_version bump, so a crash leaves the old or the new schema, never half.
 * The full schema is described in docs/storage.md.
 */
import type Database from "better-sqlite3";
import { Code, ConnectError } from "@connectrpc/connect";

export type Migration = (db: Database.Database) => void;

export const MESSAGES_MIGRATIONS: readonly Migration[] = [
  (db) =>
    db.exec(`
      CREATE TABLE messages (
        seq          INTEGER PRIMARY KEY,
        direction    TEXT    NOT NULL CHECK (direction IN ('inbound', 'outbound')),
        instance_id  TEXT    NOT NULL,
        turn         INTEGER NOT NULL,
        message_type TEXT    NOT NULL,
        content      TEXT,
        timestamp    INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX messages_direction_seq ON messages (direction, seq);
    `),
  // The agent's schedules (schedule-store.ts): beside the ledger, so a due schedule's inbound message and
  // its move to the next run are one transaction, and they replicate, restore and fork with it.
  (db) =>
    db.exec(`
      CREATE TABLE schedules (
        id         TEXT    PRIMARY KEY,
        kind       TEXT    NOT NULL CHECK (kind IN ('delay', 'date', 'cron')),
        spec       TEXT    NOT NULL,
        message    TEXT    NOT NULL,
        due_at     INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        source     TEXT    NOT NULL CHECK (source IN ('agent', 'deployment'))
      ) STRICT;
      CREATE INDEX schedules_due_at ON schedules (due_at);
    `),
  // Outbound rows are nearly all rows: the (direction, seq) index doubled the cost of every event's insert
  // (a second B-tree) and made the outbound replay look each row up twice; the primary key serves it better.
  (db) => db.exec("DROP INDEX messages_direction_seq"),
];

export const STATE_MIGRATIONS: readonly Migration[] = [
  (db) =>
    db.exec(`
      CREATE TABLE patches (
        version     INTEGER PRIMARY KEY,
        ops         TEXT    NOT NULL,
        instance_id TEXT    NOT NULL,
        turn        INTEGER NOT NULL,
        timestamp   INTEGER NOT NULL
      ) STRICT;
      CREATE TABLE snapshots (
        version   INTEGER PRIMARY KEY,
        encoding  TEXT    NOT NULL CHECK (encoding IN ('json', 'json+br')),
        data      BLOB    NOT NULL,
        raw_bytes INTEGER NOT NULL,
        timestamp INTEGER NOT NULL
      ) STRICT;
    `),
  // Large snapshots are written in chunks, one small transaction each (state-store.ts): a snapshot with
  // chunks > 0 has its bytes in snapshot_chunks (seq 0..chunks-1) and an empty data.
  (db) =>
    db.exec(`
      ALTER TABLE snapshots ADD COLUMN chunks INTEGER NOT NULL DEFAULT 0;
      CREATE TABLE snapshot_chunks (
        version INTEGER NOT NULL,
        seq     INTEGER NOT NULL,
        data    BLOB    NOT NULL,
        PRIMARY KEY (version, seq)
      ) STRICT;
    `),
];

export const LOGS_MIGRATIONS: readonly Migration[] = [
  (db) =>
    db.exec(`
      CREATE TABLE logs (
        id          INTEGER PRIMARY KEY,
        timestamp   INTEGER NOT NULL,
        level       TEXT    NOT NULL CHECK (level IN ('debug', 'info', 'warn', 'error')),
        source      TEXT    NOT NULL CHECK (source IN ('stdout', 'stderr', 'agent', 'platform')),
        message     TEXT    NOT NULL,
        instance_id TEXT    NOT NULL,
        fields      TEXT
      ) STRICT;
    `),
];

export function schemaVersion(db: Database.Database): number {
  return db.pragma("user_version", { simple: true }) as number;
}

/**
 * Brings `db` up to `migrations.length`. Returns how many migrations ran (0 when already current).
 * Refuses (FailedPrecondition) a database written by a newer build with more migrations.
 */
export function migrate(db: Database.Database, migrations: readonly Migration[], name: string): number {
  if (schemaVersion(db) === migrations.length) return 0;
  const run = db.transaction((): number => {
    // Re-read under the write lock: another process may have migrated in between.
    const from = schemaVersion(db);
    if (from > migrations.length) {
      throw new ConnectError(`${name}: schema version ${from} is newer than this build knows (${migrations.length})`, Code.FailedPrecondition);
    }
    for (let version = from; version < migrations.length; version++) (migrations[version] as Migration)(db);
    db.pragma(`user_version = ${migrations.length}`);
    return migrations.length - from;
  });
  return run.immediate();
}
