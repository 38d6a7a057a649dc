/**
 * Change-tracking sentinel directories name their owner's pid; removeOrphanWatchDirs removes those of
 * processes that are gone (a coordinator killed with -9), and nothing else: several coordinators share a host.
 */
import { describe, it, expect, afterEach } from "@jest/globals";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { removeOrphanWatchDirs, WATCH_DIR_PREFIX, WorkspaceWatcher } from "../../services/coordinator/chronicle/workspace-watcher.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-watch-dirs-"));
  dirs.push(dir);
  return dir;
}

/** The pid of a process that has exited (and been reaped). */
function deadPid(): number {
  const child = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
  return Number(child.stdout);
}

describe("removeOrphanWatchDirs", () => {
  it("removes the directories of dead processes only", () => {
    const tmp = tempDir();
    const dead = deadPid();
    const make = (name: string): string => {
      fs.mkdirSync(path.join(tmp, name));
      fs.writeFileSync(path.join(tmp, name, "barrier"), "3");
      return name;
    };
    const orphan = make(`${WATCH_DIR_PREFIX}${dead}-AbC123`);
    const mine = make(`${WATCH_DIR_PREFIX}${process.pid}-XyZ789`);
    const parent = make(`${WATCH_DIR_PREFIX}${process.ppid}-QwErTy`); // a live process
    const unnamed = make(`${WATCH_DIR_PREFIX}oldStyle`); // no pid: whose it is cannot be known
    const other = make("something-else-1");
    expect(removeOrphanWatchDirs(tmp)).toBe(1);
    expect(fs.readdirSync(tmp).sort()).toEqual([mine, parent, unnamed, other].sort());
    expect(fs.existsSync(path.join(tmp, orphan))).toBe(false);
  });

  it("a watcher's sentinel directory carries this process's pid and goes with close()", () => {
    const workspace = tempDir();
    const before = new Set(fs.readdirSync(os.tmpdir()));
    const watcher = new WorkspaceWatcher(fs.realpathSync(workspace), new Set());
    try {
      const created = fs.readdirSync(os.tmpdir()).filter((name) => !before.has(name) && name.startsWith(`${WATCH_DIR_PREFIX}${process.pid}-`));
      expect(created).toHaveLength(1);
      expect(removeOrphanWatchDirs()).toBeGreaterThanOrEqual(0);
      expect(fs.existsSync(path.join(os.tmpdir(), created[0] as string))).toBe(true); // ours: kept
    } finally {
      watcher.close();
    }
    expect(fs.readdirSync(os.tmpdir()).filter((name) => !before.has(name) && name.startsWith(`${WATCH_DIR_PREFIX}${process.pid}-`))).toEqual([]);
  });
});
