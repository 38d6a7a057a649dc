/**
 * cgroup v2 (unified hierarchy): one directory per group. Because of the "no internal processes"
 * rule, the coordinator first moves the processes of its own cgroup into a leaf
 * (`<own cgroup>/podium-supervisor`) and then turns the pids, memory and cpu controllers on for
 * its children; a second coordinator in the same cgroup finds itself in that leaf and uses its parent.
 */
import fs from "node:fs";
import path from "node:path";
import { errnoCode } from "../../shared/errors.js";
import type { CgroupLimits, CgroupLogger } from "./agent-cgroups.js";
import { killPids, listPids, readKeyed, readNumber, readText, waitSync, writeKnob, type CgroupDriver } from "./cgroup-files.js";

export const SUPERVISOR_LEAF = "podium-supervisor";
const CPU_PERIOD_US = 100_000;

/** The v2 driver for the coordinator's cgroup `selfDir`, or why it cannot limit agents. */
export function probeCgroupV2(selfDir: string, fake: boolean, logger: CgroupLogger): CgroupV2 | string {
  const base = path.basename(selfDir) === SUPERVISOR_LEAF ? path.dirname(selfDir) : selfDir;
  const available = (readText(path.join(base, "cgroup.controllers")) ?? "").split(/\s+/);
  const missing = ["pids", "memory"].filter((c) => !available.includes(c));
  if (missing.length > 0) return `cgroup v2 ${base} does not offer the ${missing.join(" and ")} controller${missing.length > 1 ? "s" : ""} (not delegated to this cgroup)`;
  return new CgroupV2(base, available.includes("cpu"), fake, logger);
}

export class CgroupV2 implements CgroupDriver {
  readonly kind = "v2";
  readonly bases: readonly string[];

  constructor(
    private readonly base: string,
    private cpu: boolean,
    readonly fake: boolean,
    private readonly logger: CgroupLogger,
  ) {
    this.bases = [base];
  }

  private controllers(): string {
    return (this.cpu ? ["pids", "memory", "cpu"] : ["pids", "memory"]).map((c) => `+${c}`).join(" ");
  }

  prepareBase(): void {
    const control = path.join(this.base, "cgroup.subtree_control");
    const enabled = (readText(control) ?? "").split(/\s+/);
    if (["pids", "memory", ...(this.cpu ? ["cpu"] : [])].every((c) => enabled.includes(c))) return;
    // The host's root cgroup has no cgroup.type and may hold processes beside its children.
    const inner = fs.existsSync(path.join(this.base, "cgroup.type"));
    for (let attempt = 1; ; attempt++) {
      if (inner) this.evacuate();
      try {
        fs.writeFileSync(control, this.controllers());
        return;
      } catch (err) {
        const code = errnoCode(err);
        if (code === "EBUSY" && attempt < 4) continue; // a process forked into the base meanwhile
        if (this.cpu && (code === "EINVAL" || code === "ENOTSUP" || code === "EOPNOTSUPP")) {
          this.logger.warn(`cgroup v2: cannot enable the cpu controller in ${this.base} (${code}); agents get no CPU share or cap`);
          this.cpu = false;
          continue;
        }
        throw new Error(`cannot enable controllers in ${control}: ${code ?? String(err)}`);
      }
    }
  }

  /** Moves every process of the base into the supervisor leaf, so the base may have limited children. */
  private evacuate(): void {
    const leaf = path.join(this.base, SUPERVISOR_LEAF);
    fs.mkdirSync(leaf, { recursive: true });
    const pids = (readText(path.join(this.base, "cgroup.procs")) ?? "").split("\n").filter((line) => line !== "");
    let moved = 0;
    for (const pid of pids) {
      try {
        fs.writeFileSync(path.join(leaf, "cgroup.procs"), pid);
        moved += 1;
      } catch (err) {
        const code = errnoCode(err);
        if (code !== "ESRCH" && code !== "EINVAL") throw new Error(`cannot move pid ${pid} into ${leaf}: ${code ?? String(err)}`);
      }
    }
    if (moved > 0) this.logger.info(`cgroup v2: moved ${moved} process(es) of ${this.base} into ${SUPERVISOR_LEAF} (no processes may sit beside limited groups)`);
  }

  prepareOwner(dirs: string[]): void {
    for (const dir of dirs) writeKnob(path.join(dir, "cgroup.subtree_control"), this.controllers());
  }

  configure(dirs: string[], limits: CgroupLimits): void {
    for (const dir of dirs) {
      writeKnob(path.join(dir, "pids.max"), String(limits.pids));
      writeKnob(path.join(dir, "memory.max"), String(limits.memoryBytes));
      writeKnob(path.join(dir, "memory.swap.max"), "0", true); // absent without swap accounting
      if (!this.cpu) continue;
      writeKnob(path.join(dir, "cpu.weight"), String(limits.cpuWeight));
      const quota = limits.cpuMaxCores === undefined ? "max" : String(Math.max(1000, Math.round(limits.cpuMaxCores * CPU_PERIOD_US)));
      writeKnob(path.join(dir, "cpu.max"), `${quota} ${CPU_PERIOD_US}`);
    }
  }

  procsFiles(dirs: string[]): string[] {
    return dirs.map((dir) => path.join(dir, "cgroup.procs"));
  }

  cpuUsageMicros(dirs: string[]): number {
    return dirs.reduce((sum, dir) => sum + (readKeyed(path.join(dir, "cpu.stat"), "usage_usec") ?? 0), 0);
  }

  memoryPeakBytes(dirs: string[]): number | undefined {
    const [dir] = dirs;
    return dir === undefined ? undefined : readNumber(path.join(dir, "memory.peak")); // Linux >= 5.19
  }

  oomKilled(dirs: string[]): boolean {
    return dirs.some((dir) => (readKeyed(path.join(dir, "memory.events"), "oom_kill") ?? 0) > 0);
  }

  kill(dirs: string[]): void {
    for (const dir of dirs) {
      // cgroup.kill (Linux >= 5.14) kills the whole subtree at once, forks in flight included.
      if (fs.existsSync(path.join(dir, "cgroup.kill")) && writeKnob(path.join(dir, "cgroup.kill"), "1", true)) continue;
      if (listPids([dir]).length === 0) continue;
      const freeze = path.join(dir, "cgroup.freeze");
      const frozen = writeKnob(freeze, "1", true);
      if (frozen) waitSync(() => readKeyed(path.join(dir, "cgroup.events"), "frozen") !== 0, 100);
      try {
        killPids(listPids([dir]));
      } finally {
        if (frozen) writeKnob(freeze, "0", true);
      }
    }
  }
}
