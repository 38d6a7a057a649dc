/**
 * Reading a database's WAL position from its `-shm` must not cost SQLite its locks. SQLite's locks are POSIX
 * record locks, which a process loses on any close of the file: a probe that opened and closed the `-shm`
 * of a database the same process had open dropped them, and Litestream, opening the database next, took
 * itself for the only user, truncated the wal-index, and the coordinator died of SIGBUS (chaos run).
 */
import { describe, it, expect, afterAll } from "@jest/globals";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { readLocalWalPosition } from "../../services/replication/wal-probe.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-wal-probe-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** This process's POSIX locks on `file` (/proc/locks: "… POSIX ADVISORY READ|WRITE pid maj:min:inode …"). */
function ownLocks(file: string): number {
  const inode = fs.statSync(file).ino;
  return fs
    .readFileSync("/proc/locks", "utf8")
    .split("\n")
    .filter((line) => line.includes("POSIX") && line.split(/\s+/).includes(String(process.pid)) && line.includes(`:${inode} `)).length;
}

describe("readLocalWalPosition", () => {
  it("reads the -shm of a database this process has open without dropping SQLite's locks on it", () => {
    const dbPath = path.join(dir, "messages.db");
    const db = new Database(dbPath);
    try {
      db.pragma("journal_mode = WAL");
      db.exec("CREATE TABLE t (x INTEGER)");
      db.prepare("INSERT INTO t VALUES (1)").run();
      const before = ownLocks(`${dbPath}-shm`);
      expect(before).toBeGreaterThan(0); // SQLite holds its wal-index (DMS) lock while the database is open
      for (let i = 0; i < 3; i++) expect(readLocalWalPosition(dbPath)?.frames).toBeGreaterThan(0);
      expect(ownLocks(`${dbPath}-shm`)).toBe(before);
    } finally {
      db.close();
    }
  });
});
