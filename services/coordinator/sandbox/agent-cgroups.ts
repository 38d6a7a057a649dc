/**
 * Whole-tree limits per agent with cgroups (docs/security.md): pids, memory (+ swap), a CPU share and
 * an optional CPU cap, counted over every process an agent starts. The coordinator creates its own
 * subtree `podium-<coordinatorId>-p<pid>-t<start>-n<seq>` under the cgroup it runs in (v2, or each v1
 * hierarchy) and one group per instance below it. The owner's pid and start time in the name let a
 * later coordinator remove the subtree of one that died, and never touch a live one's.
 * Where cgroups are not usable (not root, read-only, controllers not delegated) `kind` is "none" and
 * `reason` says why; the caller then falls back to per-process rlimits.
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import type { Logger } from "../../shared/logger.js";
import { errnoCode, errorMessage } from "../../shared/errors.js";
import { listPids, removeGroupDir, sleep, type CgroupDriver } from "./cgroup-files.js";
import { probeCgroups } from "./cgroup-probe.js";
import { processStartTime } from "./system-tools.js";

export interface CgroupLimits {
  /** Max tasks (processes and threads) in the agent's whole tree. */
  pids: number;
  /** Memory of the whole tree (memory.max / memory.limit_in_bytes); swap is capped so RAM + swap stay within it. */
  memoryBytes: number;
  /** Relative CPU share, 1..10000 (v2 cpu.weight; v1 cpu.shares scaled: 100 -> 1024). */
  cpuWeight: number;
  /** Optional hard cap in cores (cpu.max / cpu.cfs_quota_us). */
  cpuMaxCores?: number;
}

export interface AgentCgroups {
  readonly kind: "v2" | "v1" | "none";
  /** Why "none" (not root, read-only, controllers missing…). */
  readonly reason: string | undefined;
  /** `name` = instance id, [A-Za-z0-9._-] not starting with ".". */
  create(name: string, limits: CgroupLimits): AgentCgroup;
  /** Kills what is left in this coordinator's groups and removes its subtree. */
  close(): Promise<void>;
}

export interface AgentCgroup {
  readonly name: string;
  /** The group's directory in each hierarchy (one on v2). */
  readonly paths: readonly string[];
  /**
   * Moves a process (and its future children) into the group. Asynchronous: the kernel makes the first
   * write for a process wait for its cgroup lock and an RCU grace period (6-14 ms measured here), which
   * would block the coordinator's event loop. Rejects for a bad pid or a removed group.
   */
  add(pid: number): Promise<void>;
  /** Total CPU of the tree since creation (0 without a cpuacct hierarchy on v1). */
  cpuUsageMicros(): number;
  memoryPeakBytes(): number | undefined;
  pids(): number[];
  /** True when the kernel OOM-killed something in the group (memory.events oom_kill / memory.oom_control). */
  oomKilled(): boolean;
  /** SIGKILL every process in it (cgroup.kill on v2 when present). */
  kill(): void;
  /** kill + wait until empty + rmdir (idempotent; gives up with a warning after 5 s). The readings above keep their last values. */
  remove(): Promise<void>;
}

export type CgroupLogger = Pick<Logger, "debug" | "info" | "warn">;

export interface AgentCgroupsOptions {
  coordinatorId: string;
  /** Tests: a fake tree instead of the host's cgroups (see probeCgroups). */
  root?: string;
  logger: CgroupLogger;
}

const NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;
const OWNER = /^podium-.+-p(\d+)-t(\d+)-n\d+$/;
const REMOVE_LIMIT_MS = 5000;
let sequence = 0; // several coordinators (even with one id, like dev's "local") in one process

export function createAgentCgroups(options: AgentCgroupsOptions): AgentCgroups {
  const driver = probeCgroups(options.root, options.logger);
  if (typeof driver === "string") return new NoCgroups(driver);
  try {
    return new CgroupTree(driver, options);
  } catch (err) {
    return new NoCgroups(errorMessage(err));
  }
}

class NoCgroups implements AgentCgroups {
  readonly kind = "none";
  constructor(readonly reason: string) {}
  create(): AgentCgroup {
    throw new Error(`agents get no cgroups here: ${this.reason}`);
  }
  async close(): Promise<void> {}
}

function checkLimits(limits: CgroupLimits): void {
  const whole = (value: number, min: number, max = Number.MAX_SAFE_INTEGER) => Number.isInteger(value) && value >= min && value <= max;
  if (!whole(limits.pids, 1)) throw new RangeError(`cgroup pids limit must be a whole number >= 1, got ${limits.pids}`);
  if (!whole(limits.memoryBytes, 1)) throw new RangeError(`cgroup memory limit must be a whole number of bytes >= 1, got ${limits.memoryBytes}`);
  if (!whole(limits.cpuWeight, 1, 10_000)) throw new RangeError(`cgroup CPU weight must be a whole number in 1..10000, got ${limits.cpuWeight}`);
  const cores = limits.cpuMaxCores;
  if (cores !== undefined && !(Number.isFinite(cores) && cores > 0)) throw new RangeError(`cgroup CPU cap must be > 0 cores, got ${cores}`);
}

/** Kills and removes `dirs` (one per hierarchy), polling until the kernel lets them go; false after 5 s. */
async function drain(driver: CgroupDriver, dirs: string[], logger: CgroupLogger, label: string): Promise<boolean> {
  const deadline = Date.now() + REMOVE_LIMIT_MS;
  for (let pause = 2; ; pause = Math.min(pause * 2, 100)) {
    driver.kill(dirs);
    if (dirs.every((dir) => removeGroupDir(dir, driver.fake))) return true;
    if (Date.now() >= deadline) {
      logger.warn(`cgroup ${label} still has processes after ${REMOVE_LIMIT_MS / 1000} s; left in place`, { cgroup: label, pids: listPids(dirs).join(",") });
      return false;
    }
    await sleep(pause);
  }
}

class CgroupTree implements AgentCgroups {
  readonly kind: "v1" | "v2";
  readonly reason = undefined;
  private readonly owner: string;
  private readonly ownerDirs: string[];
  private readonly groups = new Map<string, Group>();
  private readonly sweeps: Promise<unknown>[] = [];
  private closing: Promise<void> | undefined;

  constructor(
    private readonly driver: CgroupDriver,
    private readonly options: AgentCgroupsOptions,
  ) {
    this.kind = driver.kind;
    const label = options.coordinatorId.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 64) || "coordinator";
    this.owner = `podium-${label}-p${process.pid}-t${processStartTime(process.pid) ?? 0}-n${++sequence}`;
    driver.prepareBase();
    this.sweepLeftovers();
    this.ownerDirs = driver.bases.map((base) => path.join(base, this.owner));
    try {
      for (const dir of this.ownerDirs) fs.mkdirSync(dir);
      driver.prepareOwner(this.ownerDirs);
    } catch (err) {
      for (const dir of this.ownerDirs) {
        try {
          removeGroupDir(dir, driver.fake);
        } catch {
          // the error below says what went wrong first
        }
      }
      throw new Error(`cannot create ${this.ownerDirs.join(", ")}: ${errnoCode(err) ?? errorMessage(err)}`);
    }
  }

  /** Removes `podium-…` subtrees whose coordinator process is gone (its pid dead or reused). */
  private sweepLeftovers(): void {
    const stale = new Set<string>();
    for (const base of this.driver.bases) {
      for (const entry of fs.readdirSync(base, { withFileTypes: true })) {
        const match = OWNER.exec(entry.name);
        if (!entry.isDirectory() || !match || entry.name === this.owner) continue;
        if (processStartTime(Number(match[1])) !== match[2]) stale.add(entry.name);
      }
    }
    for (const name of stale) {
      this.options.logger.info(`removing the cgroups of a coordinator that is gone: ${name}`, { cgroup: name });
      const removal = drain(
        this.driver,
        this.driver.bases.map((base) => path.join(base, name)),
        this.options.logger,
        name,
      );
      this.sweeps.push(removal.catch((err: unknown) => this.options.logger.warn(`removing leftover cgroup ${name} failed: ${errorMessage(err)}`)));
    }
  }

  create(name: string, limits: CgroupLimits): AgentCgroup {
    if (this.closing) throw new Error("agent cgroups are closed");
    if (!NAME.test(name)) throw new RangeError(`invalid cgroup name ${JSON.stringify(name)}: use [A-Za-z0-9._-], not starting with "."`);
    checkLimits(limits);
    if (this.groups.has(name)) throw new Error(`cgroup ${name} already exists`);
    const paths = this.ownerDirs.map((dir) => path.join(dir, name));
    this.makeDirs(name, paths);
    try {
      this.driver.configure(paths, limits);
    } catch (err) {
      for (const dir of paths) removeGroupDir(dir, this.driver.fake);
      throw err;
    }
    const group = new Group(this.driver, this.options.logger, name, paths, () => this.groups.delete(name));
    this.groups.set(name, group);
    return group;
  }

  /** mkdir in every hierarchy; a directory left by a removal that gave up is emptied and made again. */
  private makeDirs(name: string, paths: string[]): void {
    if (paths.some((dir) => fs.existsSync(dir))) {
      if (paths.some((dir) => fs.existsSync(dir) && !fs.lstatSync(dir).isDirectory())) throw new RangeError(`invalid cgroup name ${JSON.stringify(name)}: it names a cgroup control file`);
      this.driver.kill(paths);
      for (const dir of paths) removeGroupDir(dir, this.driver.fake);
    }
    for (const dir of paths) {
      try {
        fs.mkdirSync(dir);
      } catch (err) {
        if (errnoCode(err) !== "EEXIST") throw new Error(`cannot create cgroup ${dir}: ${errnoCode(err) ?? errorMessage(err)}`);
        this.options.logger.warn(`cgroup ${dir} is still busy from an earlier run; reusing it`, { cgroup: name });
      }
    }
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    await Promise.all([...this.groups.values()].map((group) => group.remove().catch((err: unknown) => this.options.logger.warn(`removing cgroup ${group.name} failed: ${errorMessage(err)}`))));
    await Promise.all(this.sweeps);
    await drain(this.driver, this.ownerDirs, this.options.logger, this.owner);
  }
}

class Group implements AgentCgroup {
  private removal: Promise<void> | undefined;
  private final: { cpu: number; peak: number | undefined; oom: boolean } | undefined;
  private readonly baseline: number;

  constructor(
    private readonly driver: CgroupDriver,
    private readonly logger: CgroupLogger,
    readonly name: string,
    readonly paths: string[],
    private readonly onRemoved: () => void,
  ) {
    this.baseline = driver.cpuUsageMicros(paths); // 0 unless an old directory was reused
  }

  async add(pid: number): Promise<void> {
    if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) throw new RangeError(`cannot put pid ${pid} into an agent's cgroup`);
    if (this.removal) throw new Error(`cgroup ${this.name} was removed`);
    for (const file of this.driver.procsFiles(this.paths)) {
      try {
        await fsp.writeFile(file, String(pid));
      } catch (err) {
        throw new Error(`cannot move pid ${pid} into cgroup ${this.name} (${file}): ${errnoCode(err) ?? errorMessage(err)}`);
      }
    }
  }

  cpuUsageMicros(): number {
    return this.final?.cpu ?? Math.max(0, this.driver.cpuUsageMicros(this.paths) - this.baseline);
  }

  memoryPeakBytes(): number | undefined {
    return this.final ? this.final.peak : this.driver.memoryPeakBytes(this.paths);
  }

  pids(): number[] {
    return listPids(this.paths);
  }

  oomKilled(): boolean {
    return this.final?.oom ?? this.driver.oomKilled(this.paths);
  }

  kill(): void {
    this.driver.kill(this.paths);
  }

  remove(): Promise<void> {
    this.removal ??= (async () => {
      this.kill();
      const final = { cpu: this.cpuUsageMicros(), peak: this.memoryPeakBytes(), oom: this.oomKilled() };
      try {
        await drain(this.driver, this.paths, this.logger, this.name);
      } finally {
        this.final = final;
        this.onRemoved();
      }
    })();
    return this.removal;
  }
}
