/**
 * Finds where this process's cgroups are (/proc/self/cgroup + /proc/self/mountinfo) and picks the
 * driver: v2 when the unified hierarchy offers pids and memory here, else v1 when the pids and
 * memory hierarchies are mounted; otherwise the reason agents get no cgroup.
 */
import fs from "node:fs";
import path from "node:path";
import type { CgroupLogger } from "./agent-cgroups.js";
import { readText, type CgroupDriver } from "./cgroup-files.js";
import { CgroupV1, V1_CONTROLLERS, type V1Controller } from "./cgroup-v1.js";
import { probeCgroupV2 } from "./cgroup-v2.js";

interface CgroupMount {
  fstype: "cgroup" | "cgroup2";
  mountPoint: string;
  /** The cgroup the mount shows as its top (not "/" for bind mounts into containers). */
  root: string;
  readOnly: boolean;
  superOptions: string[];
}

const unescapeOctal = (field: string) => field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));

function cgroupMounts(mountinfo: string): CgroupMount[] {
  const mounts: CgroupMount[] = [];
  for (const line of mountinfo.split("\n")) {
    const [left, right] = line.split(" - ");
    if (!left || !right) continue;
    const fields = left.split(" ");
    const [fstype, , superOptions] = right.split(" ");
    if (fstype !== "cgroup" && fstype !== "cgroup2") continue;
    mounts.push({
      fstype,
      mountPoint: unescapeOctal(fields[4] ?? ""),
      root: unescapeOctal(fields[3] ?? "/"),
      readOnly: (fields[5] ?? "").split(",").includes("ro"),
      superOptions: (superOptions ?? "").split(","),
    });
  }
  return mounts;
}

/** "hierarchy-id:controllers:path" lines → controller (v2: "") → path. */
function selfCgroups(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    const match = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!match) continue;
    const [, , controllers = "", cgroupPath = ""] = match;
    if (controllers === "") out.set("", cgroupPath);
    for (const controller of controllers.split(",")) if (controller) out.set(controller, cgroupPath);
  }
  return out;
}

/** The directory of `cgroupPath` under `mount`, or undefined when the mount does not show it. */
function dirIn(mount: CgroupMount, cgroupPath: string): string | undefined {
  if (cgroupPath.startsWith("/..")) return undefined; // outside our cgroup namespace
  let relative: string;
  if (mount.root === "/") relative = cgroupPath;
  else if (cgroupPath === mount.root || cgroupPath.startsWith(mount.root + "/")) relative = cgroupPath.slice(mount.root.length);
  else return undefined;
  return path.resolve(mount.mountPoint, "." + (relative || "/"));
}

/** Why this process may not create groups under `dirs` (read-only, not root and not delegated). */
function writableProblem(dirs: string[], mounts: CgroupMount[]): string | undefined {
  for (const dir of dirs) {
    const mount = mounts.find((m) => dir === m.mountPoint || dir.startsWith(m.mountPoint + "/"));
    if (mount?.readOnly) return `${mount.mountPoint} is mounted read-only`;
    if (process.geteuid?.() === 0) continue;
    try {
      fs.accessSync(dir, fs.constants.W_OK);
    } catch {
      return `not root and ${dir} is not writable (no cgroup delegation)`;
    }
  }
  return undefined;
}

/**
 * The driver for this host, or why there is none. `root` replaces the host with a fake tree: a
 * directory with `cgroup.controllers` is the coordinator's v2 cgroup; otherwise its subdirectories
 * pids, memory, cpu, cpuacct and freezer are the coordinator's v1 cgroups.
 */
export function probeCgroups(root: string | undefined, logger: CgroupLogger): CgroupDriver | string {
  if (root !== undefined) return probeFake(root, logger);
  if (process.platform !== "linux") return "cgroups need Linux";
  const self = readText("/proc/self/cgroup");
  const mountinfo = readText("/proc/self/mountinfo");
  if (self === undefined || mountinfo === undefined) return "/proc/self/cgroup is not readable";
  const entries = selfCgroups(self);
  const mounts = cgroupMounts(mountinfo);
  const reasons: string[] = [];

  const unified = entries.get("");
  const v2Dir =
    unified === undefined
      ? undefined
      : mounts
          .filter((m) => m.fstype === "cgroup2")
          .map((m) => dirIn(m, unified))
          .find(Boolean);
  if (v2Dir !== undefined) {
    const v2 = probeCgroupV2(v2Dir, false, logger);
    const problem = typeof v2 === "string" ? v2 : writableProblem([...v2.bases], mounts);
    if (typeof v2 !== "string" && problem === undefined) return v2;
    reasons.push(problem ?? "cgroup v2 unusable");
  }

  const hierarchies: Partial<Record<V1Controller, string>> = {};
  for (const controller of V1_CONTROLLERS) {
    const cgroupPath = entries.get(controller);
    if (cgroupPath === undefined) continue;
    const dir = mounts
      .filter((m) => m.fstype === "cgroup" && m.superOptions.includes(controller))
      .map((m) => dirIn(m, cgroupPath))
      .find(Boolean);
    if (dir !== undefined) hierarchies[controller] = dir;
  }
  if (hierarchies.pids !== undefined && hierarchies.memory !== undefined) {
    const v1 = new CgroupV1(hierarchies, false);
    const problem = writableProblem([...v1.bases], mounts);
    if (problem === undefined) return v1;
    reasons.push(problem);
  } else if (Object.keys(hierarchies).length > 0 || v2Dir === undefined) {
    reasons.push("no cgroup v1 pids and memory hierarchies are mounted");
  }
  return reasons.join("; ");
}

function probeFake(root: string, logger: CgroupLogger): CgroupDriver | string {
  if (fs.existsSync(path.join(root, "cgroup.controllers"))) return probeCgroupV2(root, true, logger);
  const hierarchies: Partial<Record<V1Controller, string>> = {};
  for (const controller of V1_CONTROLLERS) {
    const dir = path.join(root, controller);
    if (fs.existsSync(dir)) hierarchies[controller] = dir;
  }
  if (hierarchies.pids === undefined || hierarchies.memory === undefined) return `${root} holds neither a v2 cgroup nor v1 pids and memory hierarchies`;
  return new CgroupV1(hierarchies, true);
}
