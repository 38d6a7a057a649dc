/**
 * Every workspace watcher of a process shares one watch thread (one isolate, one inotify instance):
 * each still sees only its own workspace's changes through its own barrier, closing one leaves the
 * others working, and a watcher made after the last one closed starts a new thread.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { WorkspaceWatcher } from "../../services/coordinator/chronicle/workspace-watcher.js";

const dirs: string[] = [];
const watchers: WorkspaceWatcher[] = [];
afterEach(() => {
  for (const w of watchers.splice(0)) w.close();
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function watched(): { root: string; watcher: WorkspaceWatcher } {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "podium-watch-thread-")));
  dirs.push(root);
  const watcher = new WorkspaceWatcher(root, new Set());
  watchers.push(watcher);
  expect(watcher.waitReady(10_000)).toBe(true);
  return { root, watcher };
}

function drained(watcher: WorkspaceWatcher): string[] {
  const result = watcher.drain();
  if (!result.ok) throw new Error(`drain failed: ${result.reason}`);
  return [...result.paths].sort();
}

describe("the shared watch thread", () => {
  it("reports each workspace's own changes at its own barrier, for many workspaces at once", () => {
    const all = Array.from({ length: 12 }, () => watched());
    for (const [i, { root }] of all.entries()) fs.writeFileSync(path.join(root, `only-${i}.txt`), String(i));
    for (const [i, { watcher }] of all.entries()) expect(drained(watcher)).toEqual([`only-${i}.txt`]);
    // Nothing new: an empty barrier, for each.
    for (const { watcher } of all) expect(drained(watcher)).toEqual([]);
  });

  it("closing one workspace's watcher leaves the others working; a watcher after the last starts a new thread", () => {
    const a = watched();
    const b = watched();
    a.watcher.close();
    fs.mkdirSync(path.join(b.root, "sub"));
    fs.writeFileSync(path.join(b.root, "sub", "f.txt"), "x");
    expect(drained(b.watcher)).toEqual(expect.arrayContaining(["sub"]));
    fs.writeFileSync(path.join(b.root, "sub", "g.txt"), "y");
    expect(drained(b.watcher)).toEqual(["sub/g.txt"]);
    b.watcher.close();
    const c = watched(); // every watcher closed: the thread ended; this one starts another
    fs.writeFileSync(path.join(c.root, "h.txt"), "z");
    expect(drained(c.watcher)).toEqual(["h.txt"]);
  });
});
