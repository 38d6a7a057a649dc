import { describe, it, expect, beforeEach, afterEach } from "@jest/globals";
import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { Code } from "@connectrpc/connect";
import { AgentStore, CHECKPOINT_EVERY_TURNS, LOGS_DB, MESSAGES_DB, STATE_DB } from "../../services/coordinator/store/agent-store.js";
import { LOGS_MIGRATIONS, MESSAGES_MIGRATIONS, STATE_MIGRATIONS, migrate, schemaVersion, type Migration } from "../../services/coordinator/store/migrations.js";
import { openDatabase } from "../../services/coordinator/store/sqlite.js";
import { readLocalWalPosition } from "../../services/replication/wal-probe.js";
import { makeTempDir, removeTempDir } from "./temp-dir.js";

const DATABASES = [
  [MESSAGES_DB, MESSAGES_MIGRATIONS],
  [STATE_DB, STATE_MIGRATIONS],
  [LOGS_DB, LOGS_MIGRATIONS],
] as const;

function inspect<T>(file: string, read: (db: Database.Database) => T): T {
  const db = new Database(file, { readonly: true });
  try {
    return read(db);
  } finally {
    db.close();
  }
}

describe("AgentStore", () => {
  let dir: string;
  beforeEach(() => {
    dir = makeTempDir();
  });
  afterEach(() => removeTempDir(dir));

  it("creates the agent directory with three WAL databases at the current schema version", () => {
    const agentDir = path.join(dir, "agents", "agent-1");
    const store = AgentStore.open({ dir: agentDir });
    store.close();
    expect(fs.readdirSync(agentDir).sort()).toEqual([LOGS_DB, MESSAGES_DB, STATE_DB]); // WAL checkpointed and removed
    for (const [file, migrations] of DATABASES) {
      inspect(path.join(agentDir, file), (db) => {
        expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
        expect(schemaVersion(db)).toBe(migrations.length);
      });
    }
  });

  it("runs each migration once, in order, and refuses a newer schema", () => {
    const calls: number[] = [];
    const migrations: Migration[] = [
      (db) => {
        calls.push(1);
        db.exec("CREATE TABLE t (a INTEGER) STRICT");
      },
      (db) => {
        calls.push(2);
        db.exec("ALTER TABLE t ADD COLUMN b TEXT");
      },
    ];
    const file = path.join(dir, "x.db");
    let db = openDatabase(file, migrations.slice(0, 1));
    expect(schemaVersion(db)).toBe(1);
    expect(migrate(db, migrations.slice(0, 1), "x")).toBe(0);
    db.close();
    db = openDatabase(file, migrations);
    expect(calls).toEqual([1, 2]);
    expect(schemaVersion(db)).toBe(2);
    db.prepare("INSERT INTO t (a, b) VALUES (1, 'b')").run();
    db.close();
    db = openDatabase(file, migrations);
    expect(calls).toEqual([1, 2]);
    db.close();
    expect(() => openDatabase(file, migrations.slice(0, 1))).toThrow(expect.objectContaining({ code: Code.FailedPrecondition }));
  });

  it("rolls back a failing migration together with its version bump", () => {
    const file = path.join(dir, "y.db");
    const failing: Migration[] = [
      (db) => db.exec("CREATE TABLE ok (a INTEGER)"),
      (db) => {
        db.exec("CREATE TABLE half (a INTEGER)");
        throw new Error("boom");
      },
    ];
    expect(() => openDatabase(file, failing)).toThrow("boom");
    inspect(file, (db) => {
      expect(schemaVersion(db)).toBe(0);
      expect(db.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table'").pluck().get()).toBe(0);
    });
  });

  it("reopening an existing agent does not run migrations again", () => {
    AgentStore.open({ dir }).close();
    const mtimes = DATABASES.map(([file]) => fs.statSync(path.join(dir, file)).mtimeMs);
    const store = AgentStore.open({ dir });
    for (const [file, migrations] of DATABASES) {
      const db = openDatabase(path.join(dir, file), migrations);
      expect(migrate(db, migrations, file)).toBe(0);
      db.close();
    }
    store.close();
    expect(DATABASES.map(([file]) => fs.statSync(path.join(dir, file)).mtimeMs)).toEqual(mtimes);
  });

  it("close is idempotent and later calls fail with FailedPrecondition", () => {
    const store = AgentStore.open({ dir });
    store.messages.append({ direction: "inbound", instanceId: "i", turn: 1, messageType: "message", content: { a: 1 }, timestamp: 1 });
    store.close();
    expect(() => store.close()).not.toThrow();
    expect(store.isClosed).toBe(true);
    expect(() => store.messages.append({ direction: "inbound", instanceId: "i", turn: 1, messageType: "m", content: undefined, timestamp: 1 })).toThrow(
      expect.objectContaining({ code: Code.FailedPrecondition }),
    );
    expect(() => store.logs.append({ level: "info", source: "stdout", message: "x", instanceId: "i" })).toThrow(expect.objectContaining({ code: Code.FailedPrecondition }));
    const again = AgentStore.open({ dir });
    expect(again.messages.lastSeq()).toBe(1);
    again.close();
  });

  it("releaseMemory keeps every row and the next reads and writes; a no-op once closed", () => {
    const store = AgentStore.open({ dir });
    store.messages.append({ direction: "inbound", instanceId: "i", turn: 1, messageType: "message", content: { a: 1 }, timestamp: 1 });
    store.state.apply([{ op: "add", path: "/n", value: 1 }], { instanceId: "i", turn: 1 });
    store.releaseMemory();
    store.messages.append({ direction: "outbound", instanceId: "i", turn: 1, messageType: "reply", content: { b: 2 }, timestamp: 2 });
    expect(store.messages.list(0, 10).map((row) => row.content)).toEqual([{ a: 1 }, { b: 2 }]);
    expect(store.state.current()).toEqual({ version: 1, state: { n: 1 } });
    const reading = store.messages.ledger().outbound(["reply"]);
    expect(reading.next().value?.content).toEqual({ b: 2 }); // an open iterator: messages.db is busy, the others are released
    expect(() => store.releaseMemory()).not.toThrow();
    reading.return?.(undefined);
    store.close();
    expect(() => store.releaseMemory()).not.toThrow();
  });

  it("checkpoints its WALs on the snapshot thread every CHECKPOINT_EVERY_TURNS turns, never inside a commit; every row stays", async () => {
    const store = AgentStore.open({ dir });
    // Where each WAL ends, read from the -shm through SQLite's own fd (wal-probe.ts): a WAL restarts (new salt,
    // from frame 0) at the first commit after a checkpoint copied all of it into the main file.
    const wal = (file: string) => readLocalWalPosition(path.join(dir, file)) ?? { salt: "", frames: 0 };
    const turn = (n: number): Promise<void> | undefined => {
      store.messages.appendMany([{ direction: "inbound", instanceId: "i", turn: n, messageType: "message", content: { text: "x".repeat(8_000) }, timestamp: n }]);
      store.state.apply([{ op: "add", path: `/t${n}`, value: n }], { instanceId: "i", turn: n });
      return store.checkpointSoon();
    };
    try {
      expect(turn(1)).toBeUndefined();
      const first = { messages: wal(MESSAGES_DB), state: wal(STATE_DB) };
      for (let n = 2; n < CHECKPOINT_EVERY_TURNS; n++) expect(turn(n)).toBeUndefined();
      // 31 turns in one WAL each: nothing checkpointed inline (SQLite's own waits for 1000 pages).
      expect(wal(MESSAGES_DB)).toMatchObject({ salt: first.messages.salt, frames: expect.any(Number) });
      expect(wal(MESSAGES_DB).frames).toBeGreaterThan(2 * (CHECKPOINT_EVERY_TURNS - 1));
      expect(wal(STATE_DB).salt).toBe(first.state.salt);
      const checkpoint = turn(CHECKPOINT_EVERY_TURNS);
      expect(checkpoint).toBeInstanceOf(Promise);
      await checkpoint;
      turn(CHECKPOINT_EVERY_TURNS + 1);
      for (const [file, before] of [
        [MESSAGES_DB, first.messages],
        [STATE_DB, first.state],
      ] as const) {
        expect(wal(file).salt).not.toBe(before.salt); // restarted: the thread had copied all of it
        expect(wal(file).frames).toBeLessThan(10);
      }
      expect(store.messages.lastSeq()).toBe(CHECKPOINT_EVERY_TURNS + 1);
      expect(Object.keys(store.state.current().state as object)).toHaveLength(CHECKPOINT_EVERY_TURNS + 1);
      // A checkpoint in flight at close: close waits for it, and still leaves no WAL behind.
      for (let n = CHECKPOINT_EVERY_TURNS + 2; n <= 2 * CHECKPOINT_EVERY_TURNS; n++) turn(n);
    } finally {
      store.close();
    }
    expect(fs.readdirSync(dir).sort()).toEqual([LOGS_DB, MESSAGES_DB, STATE_DB]);
    const again = AgentStore.open({ dir });
    expect(again.messages.lastSeq()).toBe(2 * CHECKPOINT_EVERY_TURNS);
    again.close();
  });

  it("refuses a file that is not a database with DataLoss, and closes what it opened", () => {
    fs.writeFileSync(path.join(dir, STATE_DB), "this is not an SQLite database, just some text that is long enough".repeat(10));
    expect(() => AgentStore.open({ dir })).toThrow(expect.objectContaining({ code: Code.DataLoss }));
    fs.rmSync(path.join(dir, STATE_DB));
    const store = AgentStore.open({ dir }); // messages.db was closed properly and opens again
    expect(store.state.version()).toBe(0);
    store.close();
  });

  it("validates options", () => {
    expect(() => AgentStore.open({ dir: "" })).toThrow(expect.objectContaining({ code: Code.InvalidArgument }));
    expect(() => AgentStore.open({ dir, snapshotEveryVersions: 0 })).toThrow(expect.objectContaining({ code: Code.InvalidArgument }));
    expect(() => AgentStore.open({ dir, snapshotMinPatchRatio: -1 })).toThrow(expect.objectContaining({ code: Code.InvalidArgument }));
  });
});
