/**
 * Per-agent disk volumes (services/coordinator/sandbox/agent-volumes.ts) with real loop mounts: a write
 * past the quota fails with ENOSPC while it runs (workspace, HOME and /tmp share the quota), old content
 * moves in, volumes grow, mounts left by a killed coordinator are reused or swept, new volumes take images
 * formatted ahead, and links an agent planted are never followed by the root-side work. Needs root and loop devices; skipped otherwise.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "@jest/globals";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { createAgentVolumes, type AgentVolume, type AgentVolumes } from "../../services/coordinator/sandbox/agent-volumes.js";
import { createChronicleAccess } from "../../services/coordinator/chronicle-access.js";
import { Chronicle } from "../../services/coordinator/chronicle/chronicle.js";
import type { InstanceManager } from "../../services/coordinator/instance-manager.js";
import { moveAsideStaleCopy, removeStaleCopies } from "../../services/replication/stale-copies.js";
import { createLogger } from "../../services/shared/logger.js";

const MiB = 1024 * 1024;
const AGENT = { uid: 600_000_000, gid: 600_000_000 };
const OTHER = { uid: 600_000_001, gid: 600_000_001 };

const logLines: string[] = [];
const logger = createLogger({ level: "debug", write: (line) => logLines.push(line) });
const probe = createAgentVolumes({ logger });
const run = probe.enforced ? describe : describe.skip;
if (!probe.enforced) console.warn(`test/security/disk-quota.test.ts: skipping the loop-mount tests: ${probe.reason}`);

let dataDir: string;
let agents: string;
let volumes: AgentVolumes;
const opened: AgentVolume[] = [];
let counter = 0;

/** A fresh agent directory under <dataDir>/agents. */
function agentDir(): string {
  const dir = path.join(agents, `agent-${++counter}`);
  fs.mkdirSync(dir, { mode: 0o711 });
  return dir;
}

async function open(dir: string, bytes: number, owner: { uid: number; gid: number } | undefined = AGENT, on = volumes): Promise<AgentVolume> {
  const volume = await on.open(dir, bytes, owner);
  opened.push(volume);
  return volume;
}

/** Mount points at or below `dir`, from the kernel's table. */
function mountsUnder(dir: string): { mountPoint: string; options: string }[] {
  return fs
    .readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((line) => line.split(" "))
    .filter((fields) => fields[4] === dir || fields[4]?.startsWith(dir + "/"))
    .map((fields) => ({ mountPoint: fields[4] ?? "", options: fields[5] ?? "" }));
}

/** Runs a shell command as an unprivileged uid, like an agent inside its sandbox. */
function runAs(owner: { uid: number; gid: number }, script: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("/bin/sh", ["-c", script], { uid: owner.uid, gid: owner.gid, env: { PATH: "/usr/bin:/bin" }, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stderr }));
  });
}

async function waitUntil(done: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const fill = (file: string, mib: number) => `dd if=/dev/zero of='${file}' bs=1M count=${mib} conv=fsync`;

function ownerOf(file: string): { uid: number; gid: number } {
  const stat = fs.lstatSync(file);
  return { uid: stat.uid, gid: stat.gid };
}

beforeAll(() => {
  if (!probe.enforced) return;
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-disk-"));
  agents = path.join(dataDir, "agents");
  fs.mkdirSync(agents);
  // The unprivileged uid walks to its workspace by path here (in production bwrap binds it in).
  fs.chmodSync(dataDir, 0o711);
  fs.chmodSync(agents, 0o711);
  volumes = createAgentVolumes({ logger });
});

afterEach(async () => {
  while (opened.length > 0) await opened.pop()?.release();
});

afterAll(async () => {
  if (!probe.enforced) return;
  await volumes.close();
  expect(mountsUnder(dataDir)).toEqual([]);
  fs.rmSync(dataDir, { recursive: true, force: true });
});

run("agent disk volumes (real loop mounts)", () => {
  it("fails a write past the quota with ENOSPC while it runs, in the workspace, HOME and /tmp, which share one quota", async () => {
    const dir = agentDir();
    const volume = await open(dir, 16 * MiB);
    expect(volume.bytes).toBe(16 * MiB);
    for (const target of [volume.workspace, volume.home, volume.tmp]) {
      const result = await runAs(AGENT, fill(path.join(target, "filler"), 64));
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(/No space left on device/);
      expect(fs.statSync(path.join(target, "filler")).size).toBeLessThan(16 * MiB);
      expect((await runAs(AGENT, `rm '${path.join(target, "filler")}'`)).code).toBe(0);
    }
    // One quota for all three: 10 MiB in the workspace leave no room for 10 MiB in /tmp.
    expect((await runAs(AGENT, fill(path.join(volume.workspace, "ten"), 10))).code).toBe(0);
    const tmp = await runAs(AGENT, fill(path.join(volume.tmp, "ten"), 10));
    expect(tmp.stderr).toMatch(/No space left on device/);
    // Mounted nosuid,nodev (binds included), owned by the agent.
    const mounts = mountsUnder(dir);
    expect(mounts.map((m) => m.mountPoint).sort()).toEqual([path.join(dir, "home"), path.join(dir, "volume"), path.join(dir, "workspace")]);
    for (const m of mounts) expect(m.options.split(",")).toEqual(expect.arrayContaining(["nosuid", "nodev"]));
    for (const target of [volume.workspace, volume.home, volume.tmp]) expect(ownerOf(target)).toEqual(AGENT);
  });

  it("moves existing workspace and home content in, gives it to the agent, and follows no planted link", async () => {
    const dir = agentDir();
    fs.mkdirSync(path.join(dir, "workspace", "sub"), { recursive: true });
    fs.mkdirSync(path.join(dir, "home"));
    fs.writeFileSync(path.join(dir, "workspace", "a.txt"), "alpha");
    fs.writeFileSync(path.join(dir, "workspace", "sub", "b.txt"), "beta");
    fs.symlinkSync("/etc", path.join(dir, "workspace", "evil"));
    fs.symlinkSync("/etc/passwd", path.join(dir, "workspace", "sub", "pw"));
    fs.writeFileSync(path.join(dir, "home", ".profile"), "export X=1\n");
    const etc = ownerOf("/etc");
    const passwd = ownerOf("/etc/passwd");

    const volume = await open(dir, 16 * MiB);
    expect(fs.readFileSync(path.join(volume.workspace, "a.txt"), "utf8")).toBe("alpha");
    expect(fs.readFileSync(path.join(volume.workspace, "sub", "b.txt"), "utf8")).toBe("beta");
    expect(fs.readFileSync(path.join(volume.home, ".profile"), "utf8")).toBe("export X=1\n");
    expect(fs.readlinkSync(path.join(volume.workspace, "evil"))).toBe("/etc");
    for (const file of ["a.txt", "sub", "sub/b.txt", "evil", "sub/pw"]) expect(ownerOf(path.join(volume.workspace, file))).toEqual(AGENT);
    expect(ownerOf("/etc")).toEqual(etc);
    expect(ownerOf("/etc/passwd")).toEqual(passwd);
    // The agent can change what it inherited; the copy counts against the quota.
    expect((await runAs(AGENT, `echo more >> '${path.join(volume.workspace, "a.txt")}'`)).code).toBe(0);
    expect(fs.statfsSync(volume.workspace).blocks * fs.statfsSync(volume.workspace).bsize).toBeLessThanOrEqual(16 * MiB);

    await volume.release();
    // Unmounted, the old host directories are gone (moved in), not left behind as empty look-alikes.
    expect(mountsUnder(dir)).toEqual([]);
    expect(fs.readdirSync(dir).sort()).toEqual(["volume.fstab", "volume.img"]);
  });

  it("keeps workspace and home across release and reopen, empties tmp, and leaves nothing mounted after release", async () => {
    const dir = agentDir();
    const first = await open(dir, 16 * MiB);
    expect((await runAs(AGENT, `echo w > '${first.workspace}/w.txt' && echo h > '${first.home}/h.txt' && echo t > '${first.tmp}/t.txt'`)).code).toBe(0);
    await first.release();
    await first.release(); // idempotent
    expect(mountsUnder(dir)).toEqual([]);
    expect(fs.existsSync(path.join(dir, "workspace"))).toBe(false);

    const second = await open(dir, 16 * MiB);
    expect(fs.readFileSync(path.join(second.workspace, "w.txt"), "utf8")).toBe("w\n");
    expect(fs.readFileSync(path.join(second.home, "h.txt"), "utf8")).toBe("h\n");
    expect(fs.readdirSync(second.tmp)).toEqual([]);
  });

  it("gives a new volume a spare image formatted ahead, each spare once, and never uses what an earlier run left", async () => {
    const spareDir = path.join(dataDir, "sandbox", "spare-images");
    fs.mkdirSync(spareDir, { recursive: true });
    fs.writeFileSync(path.join(spareDir, "spare-1.img"), "half-formatted by a killed coordinator");
    const withSpares = createAgentVolumes({ logger, mount: { spares: { dir: spareDir, count: 2 } } });
    const images = () => fs.readdirSync(spareDir).filter((name) => name.endsWith(".img"));
    try {
      expect(images()).toEqual([]);
      // The first new volume is formatted in place; spares of its size are made after it.
      const first = await open(agentDir(), 32 * MiB, AGENT, withSpares);
      expect(first.bytes).toBe(32 * MiB);
      await waitUntil(() => images().length === 2);
      const spares = new Set(images().map((name) => fs.statSync(path.join(spareDir, name)).ino));
      const dirs = [agentDir(), agentDir()];
      const taken = await Promise.all(dirs.map((dir) => open(dir, 32 * MiB, AGENT, withSpares)));
      // Each took a different spare: its volume.img is that file.
      const inodes = dirs.map((dir) => fs.statSync(path.join(dir, "volume.img")).ino);
      expect(new Set(inodes).size).toBe(2);
      for (const ino of inodes) expect(spares.has(ino)).toBe(true);
      for (const volume of taken) {
        expect(volume.bytes).toBe(32 * MiB);
        for (const target of [volume.workspace, volume.home, volume.tmp]) expect(ownerOf(target)).toEqual(AGENT);
        expect(fs.readdirSync(volume.workspace)).toEqual([]);
        expect((await runAs(AGENT, `echo ok > '${volume.workspace}/ok.txt'`)).code).toBe(0);
        expect((await runAs(AGENT, fill(path.join(volume.tmp, "big"), 64))).stderr).toMatch(/No space left on device/);
      }
      // Another quota: made in place, and the spares follow the new size.
      const other = await open(agentDir(), 16 * MiB, AGENT, withSpares);
      expect(other.bytes).toBe(16 * MiB);
      await waitUntil(() => images().length === 2 && images().every((name) => fs.statSync(path.join(spareDir, name)).size === 16 * MiB));
    } finally {
      while (opened.length > 0) await opened.pop()?.release();
      await withSpares.close();
    }
    expect(images()).toEqual([]);
  });

  it("recreates the volume's own directories when an image lacks them", async () => {
    const dir = agentDir();
    const first = await open(dir, 16 * MiB);
    fs.writeFileSync(path.join(first.workspace, "w.txt"), "w");
    await first.release();
    opened.pop();
    const scratch = fs.mkdtempSync(path.join(dataDir, "inspect-"));
    const sh = (script: string) => new Promise((resolve) => spawn("/bin/sh", ["-c", script, "sh", path.join(dir, "volume.img"), scratch]).once("close", resolve));
    await sh(`mount -o loop "$1" "$2" && rmdir "$2/home" && umount "$2"`);
    fs.rmdirSync(scratch);
    const second = await open(dir, 16 * MiB);
    expect(mountsUnder(dir)).toHaveLength(3);
    expect(fs.readdirSync(second.home)).toEqual([]);
    expect(ownerOf(second.home)).toEqual(AGENT);
    expect(fs.readFileSync(path.join(second.workspace, "w.txt"), "utf8")).toBe("w");
  });

  it("grows the volume when the quota grows and keeps it when the quota shrinks", async () => {
    const dir = agentDir();
    await (await open(dir, 16 * MiB)).release();
    const grown = await open(dir, 32 * MiB);
    expect(grown.bytes).toBe(32 * MiB);
    expect((await runAs(AGENT, fill(path.join(grown.workspace, "big"), 24))).code).toBe(0);
    // A larger quota while mounted: online where the kernel allows (CAP_SYS_RESOURCE), else at the next mount.
    const again = await open(dir, 48 * MiB);
    await again.release();
    await grown.release();
    const larger = await open(dir, 48 * MiB);
    expect(larger.bytes).toBe(48 * MiB);
    expect(fs.readFileSync(path.join(larger.workspace, "big")).length).toBe(24 * MiB);
    await larger.release();

    logLines.length = 0;
    const smaller = await open(dir, 16 * MiB);
    expect(smaller.bytes).toBe(48 * MiB);
    expect(logLines.join("\n")).toMatch(/larger than its quota; kept/);
  });

  it("keeps a volume released with linger mounted for the agent's next open (tmp emptied), and unmountIdle() ends that", async () => {
    const dir = agentDir();
    const first = await volumes.open(dir, 16 * MiB, AGENT);
    expect((await runAs(AGENT, `echo w > '${first.workspace}/w.txt' && echo t > '${first.tmp}/t.txt'`)).code).toBe(0);
    await first.release({ linger: true });
    expect(mountsUnder(dir)).toHaveLength(3);
    // A stale copy still cannot be moved aside while it lingers; unmountIdle() (replication's hook) lets it.
    expect(() => moveAsideStaleCopy(dir)).toThrow(/still mounted/);

    const second = await open(dir, 16 * MiB);
    expect(logLines.some((line) => line.includes("agent volume reused"))).toBe(true);
    expect(fs.readFileSync(path.join(second.workspace, "w.txt"), "utf8")).toBe("w\n");
    expect(fs.readdirSync(second.tmp)).toEqual([]);
    expect(ownerOf(second.tmp)).toEqual(AGENT);
    await volumes.unmountIdle(dir); // a handle is open: kept
    expect(mountsUnder(dir)).toHaveLength(3);
    await second.release({ linger: true });
    opened.pop();
    await volumes.unmountIdle(dir);
    expect(mountsUnder(dir)).toEqual([]);
    expect(fs.existsSync(path.join(dir, "workspace"))).toBe(false);
  });

  it("keeps at most `count` volumes lingering, each for `ms`, and mounts anew one that is no longer whole", async () => {
    const counted = createAgentVolumes({ logger, mount: { linger: { count: 2 } } });
    const timed = createAgentVolumes({ logger, mount: { linger: { ms: 300 } } });
    try {
      const dirs = [agentDir(), agentDir(), agentDir()];
      for (const dir of dirs) await (await counted.open(dir, 16 * MiB, AGENT)).release({ linger: true });
      // The least recently released went first.
      await waitUntil(() => mountsUnder(dirs[0] ?? "").length === 0);
      expect(mountsUnder(dirs[1] ?? "")).toHaveLength(3);
      expect(mountsUnder(dirs[2] ?? "")).toHaveLength(3);

      const dir = dirs[2] ?? "";
      const volume = await counted.open(dir, 16 * MiB, AGENT);
      fs.writeFileSync(path.join(volume.workspace, "kept.txt"), "kept");
      await volume.release({ linger: true });
      const umount = spawn("umount", [path.join(dir, "home")]);
      await new Promise((resolve) => umount.once("close", resolve));
      expect(mountsUnder(dir)).toHaveLength(2);
      const again = await counted.open(dir, 16 * MiB, AGENT);
      expect(mountsUnder(dir)).toHaveLength(3);
      expect(fs.readFileSync(path.join(again.workspace, "kept.txt"), "utf8")).toBe("kept");
      await again.release();
      expect(mountsUnder(dir)).toEqual([]);

      // Time is up.
      const late = agentDir();
      await (await timed.open(late, 16 * MiB, AGENT)).release({ linger: true });
      await waitUntil(() => mountsUnder(late).length === 0);
    } finally {
      await counted.close();
      await timed.close();
    }
  });

  it("an open racing a lingering volume's queued unmount reclaims it; unmountIdle() waits for that unmount; a larger quota mounts it anew, grown", async () => {
    const own = createAgentVolumes({ logger, mount: { linger: { count: 1 } } });
    try {
      const [a, b] = [agentDir(), agentDir()];
      const first = await own.open(a, 16 * MiB, AGENT);
      fs.writeFileSync(path.join(first.tmp, "old.txt"), "old");
      await first.release({ linger: true });
      const other = await own.open(b, 16 * MiB, AGENT);
      logLines.length = 0;
      // The release evicts a (its unmount queued behind the open that follows at once): the open takes it back.
      const [, again] = await Promise.all([other.release({ linger: true }), own.open(a, 16 * MiB, AGENT)]);
      expect(logLines.some((line) => line.includes("agent volume reused"))).toBe(true);
      expect(fs.readdirSync(again.tmp)).toEqual([]);
      expect(mountsUnder(a)).toHaveLength(3);
      await again.release({ linger: true }); // evicts b
      await own.unmountIdle(b);
      expect(mountsUnder(b)).toEqual([]);

      const grown = await own.open(a, 64 * MiB, AGENT);
      expect(grown.bytes).toBeGreaterThanOrEqual(64 * MiB);
      expect(fs.statfsSync(grown.workspace).blocks * fs.statfsSync(grown.workspace).bsize).toBeGreaterThan(32 * MiB);
      await grown.release();
    } finally {
      await own.close();
    }
  });

  it("hands out one mount per agent (reference-counted) and close() unmounts everything", async () => {
    const own = createAgentVolumes({ logger });
    const a = agentDir();
    const b = agentDir();
    const first = await own.open(a, 16 * MiB, AGENT);
    const second = await own.open(a, 16 * MiB, AGENT);
    expect(second.workspace).toBe(first.workspace);
    expect(mountsUnder(a)).toHaveLength(3);
    await first.release();
    expect(mountsUnder(a)).toHaveLength(3); // still held by `second`
    await own.open(b, 16 * MiB, OTHER);
    expect(mountsUnder(b)).toHaveLength(3);
    await own.close();
    expect(mountsUnder(a)).toEqual([]);
    expect(mountsUnder(b)).toEqual([]);
    await second.release(); // after close: nothing left to do
    await expect(own.open(a, 16 * MiB, AGENT)).rejects.toThrow(/closed/);
  });

  it("reuses a complete volume a killed coordinator left mounted, remounts a partial one, and sweeps the rest", async () => {
    const crashed = createAgentVolumes({ logger }); // never closed: like a coordinator killed with -9
    const reused = agentDir();
    const partial = agentDir();
    const orphan = agentDir();
    const left = await crashed.open(reused, 16 * MiB, AGENT);
    fs.writeFileSync(path.join(left.workspace, "kept.txt"), "kept");
    await crashed.open(partial, 16 * MiB, AGENT);
    await crashed.open(orphan, 16 * MiB, AGENT);
    // Half of one volume unmounted: its set is incomplete.
    await new Promise((resolve) => spawn("umount", [path.join(partial, "home")]).once("close", resolve));

    const reopened = await open(reused, 16 * MiB);
    expect(mountsUnder(reused)).toHaveLength(3); // not mounted a second time
    expect(fs.readFileSync(path.join(reopened.workspace, "kept.txt"), "utf8")).toBe("kept");
    await open(partial, 16 * MiB);
    expect(mountsUnder(partial)).toHaveLength(3);

    // The sweep leaves this coordinator's volumes alone and unmounts the orphan.
    expect(await volumes.sweep(dataDir)).toBe(3);
    expect(mountsUnder(orphan)).toEqual([]);
    expect(fs.readdirSync(orphan)).toEqual(["volume.fstab", "volume.img"]);
    expect(mountsUnder(reused)).toHaveLength(3);
    expect(await volumes.sweep(dataDir)).toBe(0);
  });

  it("refuses to start an agent whose existing content does not fit its quota, and keeps that content", async () => {
    const dir = agentDir();
    fs.mkdirSync(path.join(dir, "workspace"));
    fs.writeFileSync(path.join(dir, "workspace", "big.bin"), Buffer.alloc(24 * MiB, 1));
    const failed = await volumes.open(dir, 16 * MiB, AGENT).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(failed).toBeInstanceOf(ConnectError);
    expect((failed as ConnectError).code).toBe(Code.ResourceExhausted);
    expect((failed as ConnectError).rawMessage).toMatch(/larger than the disk quota/);
    expect(mountsUnder(dir)).toEqual([]);
    expect(fs.statSync(path.join(dir, "workspace", "big.bin")).size).toBe(24 * MiB);
    const fits = await open(dir, 32 * MiB);
    expect(fs.statSync(path.join(fits.workspace, "big.bin")).size).toBe(24 * MiB);
  });

  it("detaches a volume a left-over process keeps busy, and mounts that same live filesystem again (never checked or mounted twice)", async () => {
    const patient = createAgentVolumes({ logger, mount: { busyRetryMs: 300 } });
    const dir = agentDir();
    const volume = await patient.open(dir, 16 * MiB, AGENT);
    fs.writeFileSync(path.join(volume.workspace, "before.txt"), "1");
    const holder = spawn("/bin/sleep", ["30"], { cwd: volume.workspace, uid: AGENT.uid, gid: AGENT.gid, stdio: "ignore" });
    try {
      await new Promise((resolve) => setTimeout(resolve, 100));
      logLines.length = 0;
      await volume.release();
      expect(logLines.join("\n")).toMatch(/detached lazily/);
      expect(mountsUnder(dir)).toEqual([]);
      const again = await patient.open(dir, 16 * MiB, AGENT);
      expect(logLines.join("\n")).not.toMatch(/not cleanly unmounted/);
      expect(fs.readFileSync(path.join(again.workspace, "before.txt"), "utf8")).toBe("1");
      fs.writeFileSync(path.join(again.workspace, "after.txt"), "2");
      holder.kill("SIGKILL");
      await new Promise((resolve) => holder.once("close", resolve));
      await again.release();
    } finally {
      holder.kill("SIGKILL");
      await patient.close();
    }
    const last = await open(dir, 16 * MiB);
    expect(fs.readdirSync(last.workspace).sort()).toEqual(["after.txt", "before.txt"]);
  });

  it("never moves aside or removes a stale copy whose volume is still mounted (the removal would empty the volume)", async () => {
    const dir = agentDir();
    const volume = await open(dir, 16 * MiB);
    fs.writeFileSync(path.join(volume.workspace, "precious.txt"), "keep");
    expect(() => moveAsideStaleCopy(dir)).toThrow(/still mounted/);
    // The same directory as an expired stale copy: skipped while mounted.
    const aside = `${dir}.stale-1`;
    fs.renameSync(dir, aside);
    try {
      expect(removeStaleCopies(agents, 0)).toBe(0);
      expect(fs.readFileSync(path.join(aside, "workspace", "precious.txt"), "utf8")).toBe("keep");
    } finally {
      fs.renameSync(aside, dir);
    }
    await volume.release();
    opened.pop();
    expect(mountsUnder(dir)).toEqual([]);
  });

  it("never follows links an agent planted when it changes owners or empties tmp", async () => {
    const dir = agentDir();
    const volume = await open(dir, 16 * MiB);
    const plant = [
      `ln -s /etc '${volume.workspace}/evil'`,
      `ln -s /etc/passwd '${volume.workspace}/pw'`,
      `mkdir '${volume.workspace}/d' && ln -s /etc/hostname '${volume.workspace}/d/h'`,
      `ln -s /etc '${volume.home}/etc'`,
      `ln -s /etc '${volume.tmp}/etc' && mkdir '${volume.tmp}/x' && ln -s /etc/passwd '${volume.tmp}/x/pw'`,
    ].join(" && ");
    expect((await runAs(AGENT, plant)).code).toBe(0);
    const before = ["/etc", "/etc/passwd", "/etc/hostname"].map((file) => [file, ownerOf(file), fs.statSync(file).mode] as const);
    await volume.release();
    opened.pop();

    const other = await open(dir, 16 * MiB, OTHER); // a new owner: the whole tree is re-owned
    for (const [file, owner, mode] of before) {
      expect(ownerOf(file)).toEqual(owner);
      expect(fs.statSync(file).mode).toBe(mode);
    }
    expect(fs.existsSync("/etc/passwd")).toBe(true);
    expect(ownerOf(path.join(other.workspace, "evil"))).toEqual(OTHER); // the link itself
    expect(ownerOf(path.join(other.workspace, "d", "h"))).toEqual(OTHER);
    expect(fs.readdirSync(other.tmp)).toEqual([]);
    expect(fs.readFileSync("/etc/passwd", "utf8")).toMatch(/^root:/);
  });

  it("mounts a stopped agent's volume for a file restore, which gives the file to the agent; never captures an unmounted workspace", async () => {
    const dir = agentDir();
    const dbPath = path.join(dir, "chronicle.db");
    const volume = await open(dir, 16 * MiB);
    const live = Chronicle.open({ workspaceDir: volume.workspace, dbPath, watch: false });
    expect((await runAs(AGENT, `echo one > '${volume.workspace}/a.txt'`)).code).toBe(0);
    live.capture();
    expect((await runAs(AGENT, `echo two > '${volume.workspace}/a.txt'`)).code).toBe(0);
    live.capture();
    live.close();
    await volume.release();
    opened.pop();

    const access = createChronicleAccess({ mountWorkspace: (agentDirectory, signal) => volumes.openExisting(agentDirectory, signal) });
    access.attach({ agentDir: () => dir } as unknown as InstanceManager);
    // Without the mount the workspace is absent: the restore fails and records nothing (no mass deletion).
    let caught: unknown;
    try {
      access.withChronicle("agent", (c) => c.restore("a.txt", 1));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConnectError);
    expect((caught as ConnectError).code).toBe(Code.FailedPrecondition);
    expect(access.withChronicle("agent", (c) => c.history("a.txt").length)).toBe(2);

    const restored = await access.withWorkspace("agent", (c) => c.restore("a.txt", 1));
    expect(restored.iteration).toBe(3);
    expect(mountsUnder(dir)).toEqual([]); // mounted for the call only
    const reopened = await open(dir, 16 * MiB);
    expect(fs.readFileSync(path.join(reopened.workspace, "a.txt"), "utf8")).toBe("one\n");
    expect(ownerOf(path.join(reopened.workspace, "a.txt"))).toEqual(AGENT);
    access.close();
  });
});

describe("agent disk volumes where they cannot be enforced", () => {
  it("says why, and gives plain directories with the same paths", async () => {
    const off = createAgentVolumes({ logger, mount: { enabled: false } });
    expect(off.enforced).toBe(false);
    expect(off.reason).toMatch(/disabled/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-disk-off-"));
    try {
      fs.mkdirSync(path.join(dir, "tmp"));
      fs.writeFileSync(path.join(dir, "tmp", "old"), "x");
      const volume = await off.open(dir, 16 * MiB);
      expect(volume).toMatchObject({ workspace: path.join(dir, "workspace"), home: path.join(dir, "home"), tmp: path.join(dir, "tmp"), bytes: 16 * MiB });
      expect(fs.readdirSync(volume.tmp)).toEqual([]);
      expect(await off.openExisting(dir)).toBeUndefined();
      await volume.release();
      expect(fs.existsSync(volume.workspace)).toBe(true);
      await expect(off.open(dir, 1024)).rejects.toThrow(/disk quota must be/);
      await off.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
