/**
 * Stale local copies of agents (services/replication/stale-copies.ts): moving an out-of-date agent
 * directory aside keeps only its newest stale copy, start-up cleanup removes copies past the retention,
 * and nothing belonging to another agent is ever touched.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it, expect, beforeEach, afterEach } from "@jest/globals";
import { isStaleCopyName, moveAsideStaleCopy, removeStaleCopies } from "../../services/replication/stale-copies.js";

let agentsDir: string;

beforeEach(() => {
  agentsDir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-stale-"));
});

afterEach(() => {
  fs.rmSync(agentsDir, { recursive: true, force: true });
});

/** Creates `<agentsDir>/<name>/marker.txt` containing `content`; returns the directory. */
function makeDir(name: string, content = name): string {
  const dir = path.join(agentsDir, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "marker.txt"), content);
  return dir;
}

const marker = (name: string): string => fs.readFileSync(path.join(agentsDir, name, "marker.txt"), "utf8");
const entries = (): string[] => fs.readdirSync(agentsDir).sort();

describe("isStaleCopyName", () => {
  it("matches <name>.stale-<digits> only", () => {
    expect(isStaleCopyName("agent-1.stale-1700000000000")).toBe(true);
    expect(isStaleCopyName("a.b.stale-0")).toBe(true);
    expect(isStaleCopyName("agent-1")).toBe(false);
    expect(isStaleCopyName("agent-1.stale-")).toBe(false);
    expect(isStaleCopyName("agent-1.stale-12x")).toBe(false);
    expect(isStaleCopyName("agent-1.stale-abc")).toBe(false);
    expect(isStaleCopyName(".stale-123")).toBe(false); // no agent name before it
    expect(isStaleCopyName("agent-1.stale-123.bak")).toBe(false);
    expect(isStaleCopyName("agent-1-stale-123")).toBe(false);
  });
});

describe("moveAsideStaleCopy", () => {
  it("renames the agent directory to <dir>.stale-<now> with its contents", () => {
    const dir = makeDir("agent-1", "v1");
    const aside = moveAsideStaleCopy(dir, 1_000);
    expect(aside).toBe(path.join(agentsDir, "agent-1.stale-1000"));
    expect(fs.existsSync(dir)).toBe(false);
    expect(marker("agent-1.stale-1000")).toBe("v1");
    expect(entries()).toEqual(["agent-1.stale-1000"]);
  });

  it("keeps only the newest stale copy of that agent", () => {
    makeDir("agent-1.stale-100", "older");
    makeDir("agent-1.stale-200", "old");
    const dir = makeDir("agent-1", "current");
    const aside = moveAsideStaleCopy(dir, 300);
    expect(aside).toBe(path.join(agentsDir, "agent-1.stale-300"));
    expect(entries()).toEqual(["agent-1.stale-300"]);
    expect(marker("agent-1.stale-300")).toBe("current");

    // The agent comes back (restored) and goes stale again: the previous copy is replaced.
    makeDir("agent-1", "restored");
    moveAsideStaleCopy(path.join(agentsDir, "agent-1"), 400);
    expect(entries()).toEqual(["agent-1.stale-400"]);
    expect(marker("agent-1.stale-400")).toBe("restored");
  });

  it("never touches other agents' directories or stale copies", () => {
    makeDir("agent-1.stale-100");
    makeDir("agent-2");
    makeDir("agent-2.stale-100");
    makeDir("agent-10.stale-100"); // a name with agent-1 as a prefix
    makeDir("agent-1x.stale-100");
    makeDir("x-agent-1.stale-100"); // a name with agent-1 as a suffix
    makeDir("agent-1.bak.stale-100"); // another agent whose name starts with "agent-1."
    makeDir("agent-1.backup");
    const dir = makeDir("agent-1");
    moveAsideStaleCopy(dir, 500);
    expect(entries()).toEqual(
      ["agent-1.stale-500", "agent-10.stale-100", "agent-1x.stale-100", "x-agent-1.stale-100", "agent-1.bak.stale-100", "agent-1.backup", "agent-2", "agent-2.stale-100"].sort(),
    );
    expect(marker("agent-2")).toBe("agent-2");
    expect(marker("agent-2.stale-100")).toBe("agent-2.stale-100");
    expect(marker("agent-1.bak.stale-100")).toBe("agent-1.bak.stale-100");
  });

  it("removes older stale copies that are plain files too", () => {
    fs.writeFileSync(path.join(agentsDir, "agent-1.stale-50"), "a file, not a directory");
    const dir = makeDir("agent-1");
    moveAsideStaleCopy(dir, 60);
    expect(entries()).toEqual(["agent-1.stale-60"]);
  });

  it("throws (and removes nothing) when the agent directory does not exist", () => {
    makeDir("agent-1.stale-100", "kept");
    expect(() => moveAsideStaleCopy(path.join(agentsDir, "agent-1"), 200)).toThrow(/ENOENT/);
    expect(entries()).toEqual(["agent-1.stale-100"]);
    expect(marker("agent-1.stale-100")).toBe("kept");
  });

  it("defaults `now` to the current time", () => {
    const dir = makeDir("agent-1");
    const before = Date.now();
    const aside = moveAsideStaleCopy(dir);
    const after = Date.now();
    const match = /\.stale-(\d+)$/.exec(aside);
    expect(match).not.toBeNull();
    const ms = Number(match?.[1]);
    expect(ms).toBeGreaterThanOrEqual(before);
    expect(ms).toBeLessThanOrEqual(after);
    expect(fs.existsSync(aside)).toBe(true);
  });
});

describe("removeStaleCopies", () => {
  const DAY = 86_400_000;
  const NOW = 100 * DAY;

  it("removes only stale copies older than the retention and returns how many", () => {
    makeDir(`agent-1.stale-${NOW - 3 * DAY}`); // older than retention
    makeDir(`agent-2.stale-${NOW - 8 * DAY}`); // older than retention
    makeDir(`agent-3.stale-${NOW - DAY + 1}`); // within retention
    makeDir(`agent-4.stale-${NOW}`); // just made
    makeDir("agent-1"); // live agents are never removed
    makeDir("agent-5");
    makeDir("agent-6.stale-old"); // not a stale-copy name
    const removed = removeStaleCopies(agentsDir, DAY, NOW);
    expect(removed).toBe(2);
    expect(entries()).toEqual([`agent-3.stale-${NOW - DAY + 1}`, `agent-4.stale-${NOW}`, "agent-1", "agent-5", "agent-6.stale-old"].sort());
    expect(marker("agent-1")).toBe("agent-1");
  });

  it("keeps everything when nothing is old enough, and returns 0", () => {
    makeDir(`agent-1.stale-${NOW - 1000}`);
    makeDir("agent-1");
    expect(removeStaleCopies(agentsDir, DAY, NOW)).toBe(0);
    expect(entries()).toHaveLength(2);
  });

  it("a copy exactly at the retention age is removed (retention is an upper bound on age)", () => {
    makeDir(`agent-1.stale-${NOW - DAY}`);
    makeDir(`agent-2.stale-${NOW - DAY + 1}`);
    expect(removeStaleCopies(agentsDir, DAY, NOW)).toBe(1);
    expect(entries()).toEqual([`agent-2.stale-${NOW - DAY + 1}`]);
  });

  it("retention 0 removes every stale copy, including nested contents", () => {
    const copy = makeDir("agent-1.stale-5");
    fs.mkdirSync(path.join(copy, "workspace", "deep"), { recursive: true });
    fs.writeFileSync(path.join(copy, "workspace", "deep", "f.txt"), "x");
    makeDir("agent-2.stale-6");
    makeDir("agent-3");
    expect(removeStaleCopies(agentsDir, 0, 10)).toBe(2);
    expect(entries()).toEqual(["agent-3"]);
  });

  it("returns 0 for a missing or unreadable agents directory", () => {
    expect(removeStaleCopies(path.join(agentsDir, "does-not-exist"), 0, NOW)).toBe(0);
    const file = path.join(agentsDir, "a-file");
    fs.writeFileSync(file, "not a directory");
    expect(removeStaleCopies(file, 0, NOW)).toBe(0);
    expect(fs.existsSync(file)).toBe(true);
  });

  it("defaults `now` to the current time", () => {
    makeDir(`agent-1.stale-${Date.now() - 10 * DAY}`);
    makeDir(`agent-2.stale-${Date.now()}`);
    expect(removeStaleCopies(agentsDir, DAY)).toBe(1);
    expect(entries()).toHaveLength(1);
    expect(entries()[0]).toMatch(/^agent-2\.stale-\d+$/);
  });
});
