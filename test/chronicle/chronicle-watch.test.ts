import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, it, expect, beforeEach, afterEach } from "@jest/globals";
import type { Chronicle } from "../../services/coordinator/chronicle/chronicle.js";
import { ChronicleFixture } from "./chronicle-test-utils.js";

const linux = process.platform === "linux";
const describeLinux = linux ? describe : describe.skip;

function sh(command: string, cwd: string): void {
  execFileSync("sh", ["-c", command], { cwd, stdio: "ignore" });
}

/** path -> hash of every file in the latest iteration. */
function snapshot(c: Chronicle): Record<string, string> {
  const out: Record<string, string> = {};
  if (c.latestIteration === 0) return out;
  for (const entry of c.list("", 1000)) if (entry.type === "file") out[entry.path] = c.stat(entry.path).hash;
  return out;
}

describeLinux("Chronicle change tracking (watch)", () => {
  let fx: ChronicleFixture;
  let watched: Chronicle;
  let full: Chronicle;

  beforeEach(async () => {
    fx = new ChronicleFixture();
    fx.write("src/a.ts", "a");
    fx.write("src/lib/b.ts", "b");
    fx.write("top.txt", "top");
    watched = fx.open();
    full = fx.open({ dbPath: path.join(fx.root, "full.db"), watch: false });
    expect(watched.watching).toBe(true);
    expect(full.watching).toBe(false);
    // The watch thread's start (run from source through tsx here) can take seconds on a loaded machine; the
    // first capture waits only 2 s for it and otherwise scans in full, which these tests are not about.
    for (const until = Date.now() + 30_000; !watched.watchReady && Date.now() < until; ) await new Promise((resolve) => setTimeout(resolve, 20));
    // First capture: the baseline full scan, for both.
    expect(watched.capture()?.files).toHaveLength(3);
    expect(watched.lastFullScanReason).toBe("baseline");
    expect(full.capture()?.files).toHaveLength(3);
  });
  afterEach(() => fx.cleanup());

  /** Captures with both chronicles and checks that the fast path ran and agrees with the full scan. */
  function captureBoth(): string[] {
    const fast = watched.capture();
    expect(watched.lastFullScanReason).toBeUndefined();
    const slow = full.capture();
    expect(fast?.files).toEqual(slow?.files);
    expect(snapshot(watched)).toEqual(snapshot(full));
    return (fast?.files ?? []).map((f) => `${f.change} ${f.path}`);
  }

  it("sees writes by child processes that exit right before capture", () => {
    sh("echo changed > src/a.ts && echo new > src/lib/c.ts", fx.workspace);
    expect(captureBoth()).toEqual(["modified src/a.ts", "created src/lib/c.ts"]);
    expect(captureBoth()).toEqual([]); // nothing new
  });

  it("sees new nested directories, and files written into them before and after they were watched", () => {
    sh("mkdir -p x/y/z && echo 1 > x/y/z/f1 && echo 2 > x/y/f2", fx.workspace);
    expect(captureBoth()).toEqual(["created x/y/f2", "created x/y/z/f1"]);
    sh("echo 3 > x/y/z/f3 && mkdir x/y/z/w && echo 4 > x/y/z/w/f4", fx.workspace);
    expect(captureBoth()).toEqual(["created x/y/z/f3", "created x/y/z/w/f4"]);
  });

  it("sees renames of files and directories, and writes into a renamed directory", () => {
    sh("mv top.txt moved.txt && mv src/lib src/lib2", fx.workspace);
    expect(captureBoth()).toEqual(["created moved.txt", "deleted src/lib/b.ts", "created src/lib2/b.ts", "deleted top.txt"]);
    sh("echo again > src/lib2/b.ts && echo n > src/lib2/n.ts", fx.workspace);
    expect(captureBoth()).toEqual(["modified src/lib2/b.ts", "created src/lib2/n.ts"]);
    sh("mv src/lib2 src/lib", fx.workspace);
    expect(captureBoth()).toEqual(["created src/lib/b.ts", "created src/lib/n.ts", "deleted src/lib2/b.ts", "deleted src/lib2/n.ts"]);
  });

  it("sees deletions of files and whole trees, and re-creation of a deleted directory", () => {
    sh("rm top.txt && rm -rf src", fx.workspace);
    expect(captureBoth()).toEqual(["deleted src/a.ts", "deleted src/lib/b.ts", "deleted top.txt"]);
    sh("mkdir -p src/lib && echo b > src/lib/b.ts", fx.workspace);
    expect(captureBoth()).toEqual(["created src/lib/b.ts"]);
    sh("echo b2 > src/lib/b.ts", fx.workspace);
    expect(captureBoth()).toEqual(["modified src/lib/b.ts"]);
  });

  it("does not follow a directory replaced by a symlink", () => {
    const outside = path.join(fx.root, "outside");
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, "b.ts"), "secret");
    sh(`rm -rf src/lib && ln -s ${outside} src/lib`, fx.workspace);
    expect(captureBoth()).toEqual(["deleted src/lib/b.ts"]);
    fs.writeFileSync(path.join(outside, "b.ts"), "secret 2");
    expect(captureBoth()).toEqual([]);
  });

  it("catches a burst of writes made right before capture (in process and by a child)", () => {
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 200; i++) fx.write(`burst/f${i}.txt`, `${round}-${i}`);
      sh(`for i in $(seq 0 199); do echo ${round}-$i > burst/g$i.txt; done`, fx.workspace);
      const files = captureBoth();
      expect(files).toHaveLength(400);
      expect(files.every((f) => f.startsWith(round === 0 ? "created " : "modified "))).toBe(true);
    }
    // Same size, same second: caught through the event, not the stat fingerprint.
    fx.write("burst/f0.txt", "9-0");
    expect(captureBoth()).toEqual(["modified burst/f0.txt"]);
  });

  it("agrees with a full scan while a background process keeps writing", async () => {
    // Stopped through a file outside the workspace, not a signal: a killed shell leaves its running `rm` or
    // `mkdir` behind, which could still write after the captures below.
    const stop = path.join(fx.root, "stop");
    const child = spawn("sh", ["-c", "i=0; while [ ! -e ../stop ]; do i=$((i+1)); mkdir -p bg/d$((i % 7)); echo $i > bg/d$((i % 7))/f$((i % 13)); rm -f bg/d$(((i+3) % 7))/f$(((i+5) % 13)); done"], {
      cwd: fx.workspace,
      stdio: "ignore",
    });
    const exited = new Promise((resolve) => child.once("exit", resolve));
    try {
      for (let i = 0; i < 10; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        watched.capture();
        expect(watched.lastFullScanReason).toBeUndefined();
      }
    } finally {
      fs.writeFileSync(stop, "");
      await exited;
    }
    watched.capture();
    full.capture();
    expect(snapshot(watched)).toEqual(snapshot(full));
  });

  it("agrees with a full scan over random file and directory operations (ignore honoured)", () => {
    watched.close();
    full.close();
    watched = fx.open({ dbPath: path.join(fx.root, "w2.db"), ignore: ["node_modules"] });
    full = fx.open({ dbPath: path.join(fx.root, "f2.db"), ignore: ["node_modules"], watch: false });
    watched.capture();
    full.capture();
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    let changes = 0;
    const dirs = ["", "a", "a/b", "a/b/c", "d", "node_modules/p", "e/f"];
    for (let round = 0; round < 40; round++) {
      const ops: string[] = [];
      for (let k = 0; k < 6; k++) {
        const dir = dirs[random(dirs.length)] || ".";
        const file = `${dir}/f${random(5)}`;
        switch (random(8)) {
          case 0:
            ops.push(`mkdir -p ${dir} && echo ${round} > ${file}`);
            break;
          case 1:
            ops.push(`mkdir -p ${dir} && echo x >> ${file}`);
            break;
          case 2:
            ops.push(`rm -f ${file}`);
            break;
          case 3:
            ops.push(`[ "${dir}" = . ] || rm -rf ${dir}`);
            break;
          case 4:
            ops.push(`[ -d ${dir} ] && [ "${dir}" != . ] && mv ${dir} ${dir}.tmp && mv ${dir}.tmp ${dir}_r || true`);
            break;
          case 5:
            ops.push(`[ -d ${dir}_r ] && rm -rf ${dir} && mv ${dir}_r ${dir} || true`);
            break;
          case 6:
            ops.push(`mkdir -p ${dir}/n${round}/m && echo ${round} > ${dir}/n${round}/m/g`);
            break;
          default:
            ops.push(`[ -f ${file} ] && printf %s "$(cat ${file} | tr 0-9 1-90)" > ${file} || true`);
        }
      }
      sh(ops.map((op) => `(${op}) 2>/dev/null`).join("; "), fx.workspace);
      changes += captureBoth().length;
    }
    expect(changes).toBeGreaterThan(100);
    expect(Object.keys(snapshot(watched)).some((p) => p.startsWith("node_modules"))).toBe(false);
  });

  it("falls back to a full scan after a flood of events (possible inotify overflow)", () => {
    // 9,000 files: more events than half of the default max_queued_events (16384).
    const dir = path.join(fx.workspace, "flood");
    fs.mkdirSync(dir);
    for (let i = 0; i < 9000; i++) fs.writeFileSync(path.join(dir, `f${i}`), "x");
    const result = watched.capture();
    expect(watched.lastFullScanReason).toMatch(/overflow/);
    expect(result?.files).toHaveLength(9000);
    expect(full.capture()?.files).toHaveLength(9000);
    fx.write("flood/f1", "y");
    expect(captureBoth()).toEqual(["modified flood/f1"]);
  });

  it("stops watching when the workspace root is replaced, and close() stops the watcher", () => {
    const moved = `${fx.workspace}-old`;
    fs.renameSync(fx.workspace, moved);
    fs.mkdirSync(fx.workspace);
    fs.writeFileSync(path.join(fx.workspace, "fresh.txt"), "fresh");
    const result = watched.capture();
    expect(watched.lastFullScanReason).toBe("workspace root replaced");
    expect(watched.watching).toBe(false);
    expect(result?.files.map((f) => `${f.change} ${f.path}`)).toEqual(["created fresh.txt", "deleted src/a.ts", "deleted src/lib/b.ts", "deleted top.txt"]);
    full.close();
    const other = fx.open({ dbPath: path.join(fx.root, "other.db") });
    expect(other.watching).toBe(true);
    other.close();
    expect(other.watching).toBe(false);
  });
});
