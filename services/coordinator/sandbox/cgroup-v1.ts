/**
 * cgroup v1 (legacy or hybrid layout): one directory per group in each hierarchy the coordinator
 * uses (pids and memory required; cpu, cpuacct and freezer when mounted). A process is added to
 * all of them. Killing freezes the group first so a fork bomb cannot outrun the kill.
 */
import path from "node:path";
import type { CgroupLimits } from "./agent-cgroups.js";
import { killPids, listPids, readKeyed, readNumber, readText, waitSync, writeKnob, type CgroupDriver } from "./cgroup-files.js";

export const V1_CONTROLLERS = ["pids", "memory", "cpu", "cpuacct", "freezer"] as const;
export type V1Controller = (typeof V1_CONTROLLERS)[number];

const CPU_PERIOD_US = 100_000;

/** cgroup v2 cpu.weight (default 100) as v1 cpu.shares (default 1024). */
export function sharesForWeight(weight: number): number {
  return Math.min(262_144, Math.max(2, Math.round((weight * 1024) / 100)));
}

export class CgroupV1 implements CgroupDriver {
  readonly kind = "v1";
  readonly bases: readonly string[];
  private readonly index: Partial<Record<V1Controller, number>> = {};

  /** `hierarchies`: the coordinator's own cgroup directory per controller (co-mounted ones share one). */
  constructor(
    hierarchies: Partial<Record<V1Controller, string>>,
    readonly fake: boolean,
  ) {
    const bases: string[] = [];
    for (const controller of V1_CONTROLLERS) {
      const dir = hierarchies[controller];
      if (dir === undefined) continue;
      if (!bases.includes(dir)) bases.push(dir);
      this.index[controller] = bases.indexOf(dir);
    }
    this.bases = bases;
  }

  private dir(dirs: string[], controller: V1Controller): string | undefined {
    const at = this.index[controller];
    return at === undefined ? undefined : dirs[at];
  }

  prepareBase(): void {}

  prepareOwner(): void {}

  configure(dirs: string[], limits: CgroupLimits): void {
    const pids = this.dir(dirs, "pids");
    const memory = this.dir(dirs, "memory");
    const cpu = this.dir(dirs, "cpu");
    if (pids) writeKnob(path.join(pids, "pids.max"), String(limits.pids));
    if (memory) {
      // memsw (memory + swap) must stay >= the memory limit: open it, set the limit, then close it to the same value.
      const memsw = path.join(memory, "memory.memsw.limit_in_bytes");
      const swapKnob = writeKnob(memsw, "-1", true);
      writeKnob(path.join(memory, "memory.limit_in_bytes"), String(limits.memoryBytes));
      if (swapKnob) writeKnob(memsw, String(limits.memoryBytes));
    }
    if (cpu) {
      writeKnob(path.join(cpu, "cpu.shares"), String(sharesForWeight(limits.cpuWeight)));
      const quota = limits.cpuMaxCores === undefined ? -1 : Math.max(1000, Math.round(limits.cpuMaxCores * CPU_PERIOD_US));
      writeKnob(path.join(cpu, "cpu.cfs_quota_us"), String(quota));
    }
  }

  procsFiles(dirs: string[]): string[] {
    return dirs.map((dir) => path.join(dir, "cgroup.procs"));
  }

  cpuUsageMicros(dirs: string[]): number {
    const cpuacct = this.dir(dirs, "cpuacct");
    const nanos = cpuacct === undefined ? undefined : readNumber(path.join(cpuacct, "cpuacct.usage"));
    return nanos === undefined ? 0 : Math.floor(nanos / 1000);
  }

  memoryPeakBytes(dirs: string[]): number | undefined {
    const memory = this.dir(dirs, "memory");
    return memory === undefined ? undefined : readNumber(path.join(memory, "memory.max_usage_in_bytes"));
  }

  oomKilled(dirs: string[]): boolean {
    const memory = this.dir(dirs, "memory");
    return memory !== undefined && (readKeyed(path.join(memory, "memory.oom_control"), "oom_kill") ?? 0) > 0;
  }

  kill(dirs: string[]): void {
    // A quiet group dies in one pass; when children appeared meanwhile (a fork bomb), freeze and repeat.
    const killed = new Set<number>();
    const pass = () => {
      const fresh = listPids(dirs).filter((pid) => !killed.has(pid));
      killPids(fresh);
      for (const pid of fresh) killed.add(pid);
      return fresh.length;
    };
    const freezer = this.dir(dirs, "freezer");
    const state = freezer === undefined ? undefined : path.join(freezer, "freezer.state");
    const stuck = state !== undefined && (readText(state) ?? "THAWED").trim() !== "THAWED"; // left frozen by a coordinator that died
    if (!stuck && (pass() === 0 || pass() === 0)) return;
    const frozen = state !== undefined && writeKnob(state, "FROZEN", true);
    if (state && frozen) waitSync(() => (readText(state) ?? "FROZEN").trim() === "FROZEN", 100, 1);
    try {
      for (let round = 0; round < 10 && pass() > 0; round++);
    } finally {
      if (state && frozen) writeKnob(state, "THAWED", true);
    }
  }
}
