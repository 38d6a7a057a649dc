/**
 * Process isolation for agents. With bubblewrap, an agent sees a read-only system (/usr, /etc),
 * its runtime and bundle read-only, and read-write only its own workspace and home: never another
 * agent's files or the platform's data directory. PID, IPC and UTS namespaces are private, and
 * --die-with-parent kills the agent if the coordinator dies (no orphans even on `kill -9`).
 * Memory is capped with RLIMIT_DATA (`ulimit -d`), which counts heap and private writable mappings
 * but not the large PROT_NONE reservations JavaScriptCore and V8 make.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";

export type SandboxMode = "auto" | "bwrap" | "none";

export interface SandboxLaunch {
  command: string;
  args: string[];
  workspace: string;
  home: string;
  /** Paths the agent may read (runtime, runner, bundle). */
  readOnly: string[];
  /** RLIMIT_DATA in bytes; 0 = none. */
  memoryBytes: number;
}

export interface Sandbox {
  readonly kind: "bwrap" | "none";
  wrap(launch: SandboxLaunch): { command: string; args: string[] };
}

const SYSTEM_LINKS: [string, string][] = [
  ["usr/bin", "/bin"],
  ["usr/sbin", "/sbin"],
  ["usr/lib", "/lib"],
  ["usr/lib64", "/lib64"],
];

function withMemoryLimit(command: string, args: string[], memoryBytes: number): { command: string; args: string[] } {
  if (memoryBytes <= 0) return { command, args };
  const kib = Math.max(1, Math.floor(memoryBytes / 1024));
  return { command: "/bin/sh", args: ["-c", `ulimit -d ${kib} && exec "$0" "$@"`, command, ...args] };
}

/** Binds for the system directories; on merged-/usr systems /bin, /lib… are symlinks into /usr. */
function systemBinds(): string[] {
  const out = ["--ro-bind", "/usr", "/usr"];
  for (const [target, link] of SYSTEM_LINKS) {
    let stat: fs.Stats | undefined;
    try {
      stat = fs.lstatSync(link);
    } catch {
      continue;
    }
    if (stat.isSymbolicLink()) out.push("--symlink", target, link);
    else out.push("--ro-bind", link, link);
  }
  return [...out, "--ro-bind", "/etc", "/etc"];
}

export class BubblewrapSandbox implements Sandbox {
  readonly kind = "bwrap";
  private readonly system = systemBinds();

  constructor(private readonly bwrap: string) {}

  wrap(launch: SandboxLaunch): { command: string; args: string[] } {
    const inner = withMemoryLimit(launch.command, launch.args, launch.memoryBytes);
    const args = [
      "--die-with-parent",
      "--unshare-pid",
      "--unshare-ipc",
      "--unshare-uts",
      "--unshare-cgroup-try",
      "--hostname", "podium-agent",
      ...this.system,
      "--proc", "/proc",
      "--dev", "/dev",
      "--tmpfs", "/tmp",
    ];
    for (const dir of [...new Set(launch.readOnly)]) args.push("--ro-bind", dir, dir);
    args.push("--bind", launch.workspace, launch.workspace, "--bind", launch.home, launch.home, "--chdir", launch.workspace);
    return { command: this.bwrap, args: [...args, "--", inner.command, ...inner.args] };
  }
}

export class NoSandbox implements Sandbox {
  readonly kind = "none";
  wrap(launch: SandboxLaunch): { command: string; args: string[] } {
    return withMemoryLimit(launch.command, launch.args, launch.memoryBytes);
  }
}

/** True when bubblewrap can create the namespaces it needs on this host. */
export function bubblewrapWorks(bwrap = "bwrap"): boolean {
  const probe = spawnSync(bwrap, ["--die-with-parent", "--unshare-pid", ...systemBinds(), "--proc", "/proc", "--dev", "/dev", "--", "/bin/true"], {
    timeout: 5000,
    stdio: "ignore",
  });
  return probe.status === 0;
}

/**
 * "auto" uses bubblewrap when it works and warns otherwise; "bwrap" requires it; "none" disables
 * isolation (agents still get their own cwd, environment and memory limit).
 */
export function createSandbox(mode: SandboxMode, warn: (message: string) => void, bwrap = "bwrap"): Sandbox {
  if (mode === "none") return new NoSandbox();
  if (bubblewrapWorks(bwrap)) return new BubblewrapSandbox(bwrap);
  if (mode === "bwrap") throw new Error(`sandbox "bwrap" was requested but ${bwrap} cannot run here (install bubblewrap)`);
  warn("bubblewrap (bwrap) is not available: agents run WITHOUT a filesystem sandbox; install bubblewrap to isolate them");
  return new NoSandbox();
}
