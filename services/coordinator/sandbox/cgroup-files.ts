/**
 * Small synchronous helpers over cgroupfs files shared by the v1 and v2 drivers, and the contract
 * a driver fulfils for agent-cgroups.ts. Every file here is a few bytes, so sync calls are fine.
 */
import fs from "node:fs";
import path from "node:path";
import { errnoCode } from "../../shared/errors.js";
import type { CgroupLimits } from "./agent-cgroups.js";

/**
 * What differs between cgroup v1 and v2. `dirs` arguments are one directory per entry of `bases`,
 * in the same order (v1: one per hierarchy; v2: one).
 */
export interface CgroupDriver {
  readonly kind: "v1" | "v2";
  /** The coordinator's own cgroup in each hierarchy; its subtree `podium-…` is created there. */
  readonly bases: readonly string[];
  /** The bases are plain directories standing in for cgroupfs (unit tests): rmdir must remove files first. */
  readonly fake: boolean;
  /** Makes the bases able to hold limited children (v2: leaf for the coordinator, controllers on). */
  prepareBase(): void;
  /** Enables controllers below the coordinator's own `podium-…` directories. */
  prepareOwner(dirs: string[]): void;
  configure(dirs: string[], limits: CgroupLimits): void;
  procsFiles(dirs: string[]): string[];
  cpuUsageMicros(dirs: string[]): number;
  memoryPeakBytes(dirs: string[]): number | undefined;
  oomKilled(dirs: string[]): boolean;
  kill(dirs: string[]): void;
}

/** Content of a file, or undefined when it does not exist (a knob this kernel lacks, a removed group). */
export function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (err) {
    if (errnoCode(err) === "ENOENT" || errnoCode(err) === "ENODEV") return undefined;
    throw err;
  }
}

/** A number file (`pids.max`, `cpuacct.usage`…), undefined when absent or not a number. */
export function readNumber(file: string): number | undefined {
  const text = readText(file)?.trim();
  if (text === undefined || !/^\d+$/.test(text)) return undefined;
  return Number(text);
}

/** The value of `key` in a flat-keyed file (`memory.events`, `cpu.stat`: "key value" lines). */
export function readKeyed(file: string, key: string): number | undefined {
  const text = readText(file);
  if (text === undefined) return undefined;
  for (const line of text.split("\n")) {
    const [name, value] = line.split(" ");
    if (name === key && value !== undefined && /^\d+$/.test(value)) return Number(value);
  }
  return undefined;
}

/**
 * Writes a knob. An optional knob that this kernel does not have (cgroupfs refuses to create files:
 * ENOENT or EACCES) is skipped and reported as false; a required one throws with the file named.
 */
export function writeKnob(file: string, value: string, optional = false): boolean {
  try {
    fs.writeFileSync(file, value);
    return true;
  } catch (err) {
    const code = errnoCode(err);
    if (optional && (code === "ENOENT" || code === "EACCES")) return false;
    throw new Error(`writing "${value}" to ${file} failed: ${code ?? String(err)}`);
  }
}

/** Directories below `dir`, deepest first (a cgroup can only be removed once its children are). */
export function descendantDirs(dir: string): string[] {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if (errnoCode(err) === "ENOENT") return [];
    throw err;
  }
  const out: string[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory()) continue;
    const child = path.join(dir, entry.name);
    out.push(...descendantDirs(child), child);
  }
  return out;
}

/** Every process in `dirs` and below (deduplicated; pid 0 = outside our pid namespace, skipped). */
export function listPids(dirs: string[]): number[] {
  const pids = new Set<number>();
  for (const dir of dirs) {
    for (const group of [dir, ...descendantDirs(dir)]) {
      for (const line of (readText(path.join(group, "cgroup.procs")) ?? "").split("\n")) {
        const pid = Number(line);
        if (line !== "" && Number.isInteger(pid) && pid > 0) pids.add(pid);
      }
    }
  }
  return [...pids];
}

/** SIGKILL each pid; never this process or init, whatever a group file says. */
export function killPids(pids: number[]): void {
  for (const pid of pids) {
    if (pid <= 1 || pid === process.pid) continue;
    try {
      process.kill(pid, "SIGKILL");
    } catch (err) {
      if (errnoCode(err) !== "ESRCH") throw err;
    }
  }
}

/**
 * rmdir `dir` and its child groups. False while a group still has processes (EBUSY); a missing
 * directory counts as removed. `plainFiles`: the tree is a fake on a normal filesystem.
 */
export function removeGroupDir(dir: string, plainFiles: boolean): boolean {
  for (const target of [...descendantDirs(dir), dir]) {
    try {
      if (plainFiles) {
        for (const entry of fs.readdirSync(target, { withFileTypes: true })) {
          if (!entry.isDirectory()) fs.unlinkSync(path.join(target, entry.name));
        }
      }
      fs.rmdirSync(target);
    } catch (err) {
      const code = errnoCode(err);
      if (code === "ENOENT") continue;
      if (code === "EBUSY" || code === "ENOTEMPTY") return false;
      throw err;
    }
  }
  return true;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Blocks the thread for `ms` without spinning (only for the few ms a freeze takes). */
export function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `done` every `stepMs` (blocking, without spinning) until it holds or `limitMs` passed. */
export function waitSync(done: () => boolean, limitMs: number, stepMs = 2): boolean {
  const deadline = Date.now() + limitMs;
  for (;;) {
    if (done()) return true;
    if (Date.now() >= deadline) return false;
    sleepSync(stepMs);
  }
}
