/**
 * Per-agent cgroups (services/coordinator/sandbox/agent-cgroups.ts). On the real cgroup fs (root
 * only): a fork bomb stays within the pids limit, a memory hog split over 4 processes stays within
 * the memory limit and is OOM-killed, CPU is counted and capped, remove() and close() leave nothing,
 * and a dead coordinator's subtree is cleaned up while live ones are left alone. Against a fake tree
 * (any user): the exact files the v2 and v1 drivers write.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { createAgentCgroups, type AgentCgroup, type AgentCgroups } from "../../services/coordinator/sandbox/agent-cgroups.js";
import { processStartTime } from "../../services/coordinator/sandbox/system-tools.js";
import { listPids, readKeyed, removeGroupDir } from "../../services/coordinator/sandbox/cgroup-files.js";
import { CgroupV2 } from "../../services/coordinator/sandbox/cgroup-v2.js";
import { silentLogger } from "../../services/shared/logger.js";

const MiB = 1024 * 1024;
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const children = new Set<ChildProcess>();

afterEach(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  children.clear();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(what: string, done: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Alive and not a zombie. */
function running(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

const read = (file: string) => fs.readFileSync(file, "utf8");

/** A shell that waits for a line on stdin, is put into `group`, then runs `script` there. */
async function startIn(group: AgentCgroup, script: string) {
  const child = spawn("/bin/sh", ["-c", `read x; ${script}`], { stdio: ["pipe", "ignore", "pipe"] });
  children.add(child);
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.once("exit", (code, signal) => resolve(signal ?? code)));
  if (child.pid === undefined) throw new Error("sh did not start");
  await group.add(child.pid);
  child.stdin?.end("go\n");
  return { pid: child.pid, exited, stderr: () => stderr };
}

// ---------------------------------------------------------------- the real cgroup fs of this host

const root = process.geteuid?.() === 0;
const host: AgentCgroups | undefined = root ? createAgentCgroups({ coordinatorId: `jest-${process.pid}`, logger: silentLogger }) : undefined;
const usable = host !== undefined && host.kind !== "none";
if (!usable) console.warn(`cgroups.test.ts: skipping the tests on the real cgroup fs: ${root ? `no usable cgroups (${host?.reason})` : "not root"}`);
const onHost = usable ? describe : describe.skip;
const hostCgroups = (): AgentCgroups => {
  if (!host) throw new Error("no host cgroups");
  return host;
};

afterAll(async () => {
  await host?.close();
});

onHost(`agent cgroups on this host (${host?.kind})`, () => {
  it("bounds a fork bomb by the pids limit; the host keeps forking", async () => {
    const group = hostCgroups().create(`bomb-${process.pid}`, { pids: 16, memoryBytes: 256 * MiB, cpuWeight: 100 });
    const bomb = await startIn(group, "for i in $(seq 100); do sleep 30 & done; wait");
    await waitFor("the shell to be refused a fork", () => /fork/i.test(bomb.stderr()));
    for (let sample = 0; sample < 10; sample++) {
      expect(group.pids().length).toBeLessThanOrEqual(16);
      await sleep(30);
    }
    const members = group.pids();
    expect(members.length).toBeGreaterThan(1);
    const outside = spawnSync("/bin/sh", ["-c", "for i in 1 2 3 4 5 6 7 8 9 10; do true & done; wait; echo ok"], { encoding: "utf8" });
    expect(outside.stdout.trim()).toBe("ok");

    await group.remove();
    for (const dir of group.paths) expect(fs.existsSync(dir)).toBe(false);
    await waitFor("the bomb's processes to be gone", () => members.every((pid) => !running(pid)));
    await bomb.exited; // dash gives up after a refused fork (exit 2), or was killed
  });

  it("bounds memory over the whole tree: 4 × 200 MB against 256 MiB are OOM-killed", async () => {
    const limit = 256 * MiB;
    const group = hostCgroups().create(`hog-${process.pid}`, { pids: 64, memoryBytes: limit, cpuWeight: 100 });
    const hog = `"${process.execPath}" -e 'const b = Buffer.alloc(200 * 1024 * 1024, 1); setTimeout(() => b.length, 60000)'`;
    await startIn(group, `for i in 1 2 3 4; do ${hog} & done; wait`);
    await waitFor("the kernel to OOM-kill a hog", () => group.oomKilled(), 40_000);
    const peak = group.memoryPeakBytes();
    expect(peak).toBeDefined();
    expect(peak ?? Infinity).toBeLessThanOrEqual(limit);
    await group.remove();
    for (const dir of group.paths) expect(fs.existsSync(dir)).toBe(false);
    expect(group.oomKilled()).toBe(true); // the last reading survives the removal
  }, 60_000);

  it("counts the tree's CPU and caps it at cpuMaxCores", async () => {
    const group = hostCgroups().create(`spin-${process.pid}`, { pids: 16, memoryBytes: 64 * MiB, cpuWeight: 50, cpuMaxCores: 0.5 });
    const cpuDir = group.paths.find((dir) => fs.existsSync(path.join(dir, "cpu.shares")));
    if (cpuDir) {
      expect(read(path.join(cpuDir, "cpu.shares")).trim()).toBe("512");
      expect(read(path.join(cpuDir, "cpu.cfs_quota_us")).trim()).toBe("50000");
    }
    expect(group.cpuUsageMicros()).toBe(0);
    const spin = await startIn(group, "while :; do :; done");
    await waitFor("the spinning shell to use 0.3 s of CPU", () => group.cpuUsageMicros() >= 300_000);
    const startedAt = performance.now();
    const before = group.cpuUsageMicros();
    await sleep(1500);
    const used = group.cpuUsageMicros() - before;
    const wall = (performance.now() - startedAt) * 1000;
    expect(used).toBeGreaterThan(0);
    expect(used / wall).toBeLessThan(0.75); // 0.5 cores, with room for CFS slack
    await group.remove();
    expect(await spin.exited).toBe("SIGKILL");
    for (const dir of group.paths) expect(fs.existsSync(dir)).toBe(false);
  });

  it("close() kills what is left and removes the coordinator's whole subtree", async () => {
    const cgroups = createAgentCgroups({ coordinatorId: `close-${process.pid}`, logger: silentLogger });
    const busy = cgroups.create("busy", { pids: 8, memoryBytes: 64 * MiB, cpuWeight: 100 });
    const idle = cgroups.create("idle", { pids: 8, memoryBytes: 64 * MiB, cpuWeight: 100 });
    const sleeper = await startIn(busy, "exec sleep 60");
    expect(busy.pids()).toEqual([sleeper.pid]);
    await cgroups.close();
    expect(await sleeper.exited).toBe("SIGKILL");
    for (const dir of [...busy.paths, ...idle.paths]) {
      expect(fs.existsSync(dir)).toBe(false);
      expect(fs.existsSync(path.dirname(dir))).toBe(false);
    }
    expect(() => cgroups.create("late", { pids: 8, memoryBytes: 64 * MiB, cpuWeight: 100 })).toThrow(/closed/);
  });

  it("removes the subtree of a coordinator that died, and leaves live coordinators' groups alone", async () => {
    const dead = await startOwner(`dead-${process.pid}`);
    const alive = await startOwner(`alive-${process.pid}`);
    const mine = hostCgroups().create(`mine-${process.pid}`, { pids: 8, memoryBytes: 64 * MiB, cpuWeight: 100 });
    const mySleeper = await startIn(mine, "exec sleep 60");
    try {
      dead.process.kill("SIGKILL");
      await new Promise((resolve) => dead.process.once("exit", resolve));
      // Its `sleep` outlives it, in its groups (another coordinator starting on this host may already be sweeping them).

      const sweeper = createAgentCgroups({ coordinatorId: `sweeper-${process.pid}`, logger: silentLogger });
      await waitFor("the dead coordinator's subtree to be removed", () => dead.paths.every((dir) => !fs.existsSync(path.dirname(dir))));
      await waitFor("the orphan to be killed", () => !running(dead.sleeper));
      await sweeper.close();

      for (const dir of [...alive.paths, ...mine.paths]) expect(fs.existsSync(dir)).toBe(true);
      expect(running(alive.sleeper)).toBe(true);
      expect(mine.pids()).toEqual([mySleeper.pid]);
    } finally {
      alive.process.stdin?.end();
      await new Promise((resolve) => (alive.process.exitCode === null ? alive.process.once("exit", resolve) : resolve(null)));
      for (const pid of [dead.sleeper, alive.sleeper]) if (running(pid)) process.kill(pid, "SIGKILL");
      await mine.remove();
    }
    for (const dir of alive.paths) expect(fs.existsSync(dir)).toBe(false);
  }, 60_000);

  it("on cgroup v2, cgroup.kill and cpu.stat work on this kernel (hybrid unified mount, no controllers needed)", async () => {
    const unified = "/sys/fs/cgroup/unified";
    const self = /^0::(.*)$/m.exec(read("/proc/self/cgroup"))?.[1];
    if (hostCgroups().kind !== "v1" || self === undefined || !fs.existsSync(path.join(unified, "cgroup.procs"))) return;
    const base = path.join(unified, self);
    const dir = path.join(base, `podium-jest-v2-${process.pid}`);
    fs.mkdirSync(dir);
    try {
      const driver = new CgroupV2(base, false, false, silentLogger);
      const child = spawn("/bin/sh", ["-c", "read x; for i in 1 2 3 4 5; do sleep 30 & done; while :; do :; done"], { stdio: ["pipe", "ignore", "ignore"] });
      children.add(child);
      const exited = new Promise((resolve) => child.once("exit", (_code, signal) => resolve(signal)));
      for (const file of driver.procsFiles([dir])) fs.writeFileSync(file, String(child.pid));
      child.stdin?.end("go\n");
      await waitFor("six processes in the v2 group", () => listPids([dir]).length === 6);
      await waitFor("CPU to be counted", () => driver.cpuUsageMicros([dir]) > 100_000);
      driver.kill([dir]);
      expect(await exited).toBe("SIGKILL");
      await waitFor("the v2 group to empty", () => readKeyed(path.join(dir, "cgroup.events"), "populated") === 0);
    } finally {
      await waitFor("the v2 group to be removable", () => removeGroupDir(dir, false), 5000);
    }
  });
});

interface Owner {
  process: ChildProcess;
  paths: string[];
  sleeper: number;
}

/** A coordinator in another process (test/security/fixtures/cgroup-owner.ts). */
async function startOwner(coordinatorId: string): Promise<Owner> {
  const child = spawn(process.execPath, ["--import", "tsx", "test/security/fixtures/cgroup-owner.ts", coordinatorId], { cwd: repo, stdio: ["pipe", "pipe", "inherit"] });
  children.add(child);
  if (!child.stdout) throw new Error("no stdout pipe");
  const lines = readline.createInterface({ input: child.stdout });
  const first = await new Promise<string>((resolve, reject) => {
    lines.once("line", resolve);
    child.once("exit", (code) => reject(new Error(`cgroup-owner exited with ${code}`)));
  });
  lines.close();
  const report = JSON.parse(first) as { kind: string; paths: string[]; sleeper: number };
  expect(report.kind).toBe(hostCgroups().kind);
  return { process: child, paths: report.paths, sleeper: report.sleeper };
}

// ---------------------------------------------------------------- a fake tree: exact files written

describe("agent cgroups against a fake tree", () => {
  let dir: string;
  const opened: AgentCgroups[] = [];
  const open = (coordinatorId = "unit") => {
    const cgroups = createAgentCgroups({ coordinatorId, root: dir, logger: silentLogger });
    opened.push(cgroups);
    return cgroups;
  };
  const files = (target: string) =>
    Object.fromEntries(
      fs
        .readdirSync(target, { withFileTypes: true })
        .filter((entry) => entry.isFile())
        .map((entry) => [entry.name, read(path.join(target, entry.name))]),
    );

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-cgroups-"));
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((cgroups) => cgroups.close()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const fakeV2 = (fields: { controllers?: string; subtreeControl?: string; procs?: string } = {}) => {
    fs.writeFileSync(path.join(dir, "cgroup.controllers"), fields.controllers ?? "cpuset cpu io memory hugetlb pids rdma misc\n");
    fs.writeFileSync(path.join(dir, "cgroup.subtree_control"), fields.subtreeControl ?? "");
    fs.writeFileSync(path.join(dir, "cgroup.type"), "domain\n");
    fs.writeFileSync(path.join(dir, "cgroup.procs"), fields.procs ?? `${process.pid}\n`);
  };

  it("v2: moves the coordinator into a leaf, enables controllers, writes every limit", () => {
    fakeV2();
    const cgroups = open();
    expect(cgroups.kind).toBe("v2");
    expect(read(path.join(dir, "podium-supervisor", "cgroup.procs"))).toBe(String(process.pid));
    expect(read(path.join(dir, "cgroup.subtree_control"))).toBe("+pids +memory +cpu");

    const capped = cgroups.create("inst-1", { pids: 256, memoryBytes: 1024 * MiB, cpuWeight: 50, cpuMaxCores: 1.5 });
    expect(capped.paths).toHaveLength(1);
    const group = capped.paths[0] ?? "";
    const owner = path.dirname(group);
    expect(path.dirname(owner)).toBe(dir);
    expect(path.basename(owner)).toMatch(new RegExp(`^podium-unit-p${process.pid}-t\\d+-n\\d+$`));
    expect(files(owner)).toEqual({ "cgroup.subtree_control": "+pids +memory +cpu" });
    expect(files(group)).toEqual({
      "pids.max": "256",
      "memory.max": "1073741824",
      "memory.swap.max": "0",
      "cpu.weight": "50",
      "cpu.max": "150000 100000",
    });

    const uncapped = cgroups.create("inst-2", { pids: 16, memoryBytes: 64 * MiB, cpuWeight: 10000 });
    expect(read(path.join(uncapped.paths[0] ?? "", "cpu.max"))).toBe("max 100000");
    expect(read(path.join(uncapped.paths[0] ?? "", "cpu.weight"))).toBe("10000");
  });

  it("v2: add() writes the pid into cgroup.procs; remove() and close() take the directories away", async () => {
    fakeV2();
    const cgroups = open();
    const group = cgroups.create("inst-1", { pids: 16, memoryBytes: 64 * MiB, cpuWeight: 100 });
    const child = spawn("sleep", ["30"], { stdio: "ignore" });
    children.add(child);
    await group.add(child.pid ?? 0);
    const procs = path.join(group.paths[0] ?? "", "cgroup.procs");
    expect(read(procs)).toBe(String(child.pid));
    fs.writeFileSync(procs, ""); // a fake file does not empty itself when the kernel would
    await group.remove();
    await group.remove();
    expect(fs.existsSync(group.paths[0] ?? "")).toBe(false);
    await expect(group.add(child.pid ?? 0)).rejects.toThrow(/removed/);
    await cgroups.close();
    expect(fs.readdirSync(dir).sort()).toEqual(["cgroup.controllers", "cgroup.procs", "cgroup.subtree_control", "cgroup.type", "podium-supervisor"]);
  });

  it("v2: leaves a cgroup whose controllers are already on as it is", () => {
    fakeV2({ subtreeControl: "cpu memory pids\n", procs: "" });
    expect(open().kind).toBe("v2");
    expect(fs.existsSync(path.join(dir, "podium-supervisor"))).toBe(false);
    expect(read(path.join(dir, "cgroup.subtree_control"))).toBe("cpu memory pids\n");
  });

  it("v2: without delegated pids and memory controllers the kind is none, with the reason", () => {
    fakeV2({ controllers: "cpu io\n" });
    const cgroups = open();
    expect(cgroups.kind).toBe("none");
    expect(cgroups.reason).toMatch(/pids and memory/);
    expect(() => cgroups.create("inst-1", { pids: 16, memoryBytes: 64 * MiB, cpuWeight: 100 })).toThrow(/no cgroups/);
  });

  it("validates names and limits", () => {
    fakeV2();
    const cgroups = open();
    const limits = { pids: 16, memoryBytes: 64 * MiB, cpuWeight: 100 };
    for (const name of ["", ".", "..", "../x", "a/b", ".hidden", "a b", "x".repeat(129)]) expect(() => cgroups.create(name, limits)).toThrow(RangeError);
    cgroups.create("inst-1", limits);
    expect(() => cgroups.create("inst-1", limits)).toThrow(/already exists/);
    expect(() => cgroups.create("cgroup.subtree_control", limits)).toThrow(/control file/);
    expect(() => cgroups.create("w", { ...limits, cpuWeight: 0 })).toThrow(RangeError);
    expect(() => cgroups.create("p", { ...limits, pids: 1.5 })).toThrow(RangeError);
    expect(() => cgroups.create("c", { ...limits, cpuMaxCores: 0 })).toThrow(RangeError);
  });

  it("removes leftovers of a coordinator that is gone (pid dead or reused), never a live one's", async () => {
    fakeV2({ subtreeControl: "cpu memory pids", procs: "" });
    const start = processStartTime(process.pid);
    const reused = path.join(dir, `podium-old-p${process.pid}-t1-n1`, "agent-a"); // our pid, another start time
    const dead = path.join(dir, "podium-old-p4194305-t5-n2", "agent-b"); // above any pid_max
    const live = path.join(dir, `podium-other-p${process.pid}-t${start}-n999`, "agent-c");
    for (const target of [reused, dead, live]) fs.mkdirSync(target, { recursive: true });
    const cgroups = open("sweeper");
    await cgroups.close();
    expect(fs.existsSync(path.dirname(reused))).toBe(false);
    expect(fs.existsSync(path.dirname(dead))).toBe(false);
    expect(fs.existsSync(live)).toBe(true);
  });

  it("v1: one directory per hierarchy, cpu.shares scaled from the weight, swap capped with memsw", () => {
    for (const controller of ["pids", "memory", "cpu", "cpuacct", "freezer"]) fs.mkdirSync(path.join(dir, controller));
    const cgroups = open();
    expect(cgroups.kind).toBe("v1");
    const group = cgroups.create("inst-1", { pids: 256, memoryBytes: 1024 * MiB, cpuWeight: 100, cpuMaxCores: 2 });
    const [pids, memory, cpu, cpuacct, freezer] = group.paths;
    expect(group.paths.map((target) => path.relative(dir, target).split(path.sep)[0])).toEqual(["pids", "memory", "cpu", "cpuacct", "freezer"]);
    expect(files(pids ?? "")).toEqual({ "pids.max": "256" });
    expect(files(memory ?? "")).toEqual({ "memory.limit_in_bytes": "1073741824", "memory.memsw.limit_in_bytes": "1073741824" });
    expect(files(cpu ?? "")).toEqual({ "cpu.shares": "1024", "cpu.cfs_quota_us": "200000" });
    expect(files(cpuacct ?? "")).toEqual({});
    expect(files(freezer ?? "")).toEqual({});
    const light = cgroups.create("inst-2", { pids: 16, memoryBytes: 64 * MiB, cpuWeight: 1 });
    expect(files(light.paths[2] ?? "")).toEqual({ "cpu.shares": "10", "cpu.cfs_quota_us": "-1" });
  });
});
