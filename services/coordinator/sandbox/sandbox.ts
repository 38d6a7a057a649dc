/**
 * Process isolation for agents (docs/security.md). With bubblewrap an agent runs:
 * - as its own unprivileged outer uid/gid when the coordinator is root (agent-uids.ts), inside a
 *   user namespace, with every capability dropped, no_new_privs, and no further user namespaces;
 * - in its own mount, PID, IPC, UTS, cgroup and (unless `network: "host"`) network namespaces;
 * - seeing a read-only system (/usr, /etc), its runtime and bundle read-only, and read-write only its
 *   own workspace, home and /tmp: never another agent's files or the platform's data directory.
 * bwrap blocks before the agent's command runs (--block-fd) until the coordinator has put the sandbox
 * in its cgroup and attached its network (`prepare` of AgentProcess), so nothing escapes either.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import type { AgentNetworkPolicy as NetworkPolicy } from "../../registry/bundle-manifest.js";

export type SandboxMode = "auto" | "bwrap" | "none";

/** The fds bwrap gets beside stdin/stdout/stderr and the frame pipe (fd 3). */
export const INFO_FD = 4;
export const BLOCK_FD = 5;

export interface SandboxSpec {
  command: string;
  args: string[];
  workspace: string;
  home: string;
  /** Host directory mounted at /tmp (counts against the disk quota); otherwise a tmpfs of `tmpBytes`. */
  tmp?: string;
  tmpBytes: number;
  /** Paths the agent may read (runtime, runner, bundle), mounted at the same path. */
  readOnly: string[];
  /** Files mounted read-only over system files: [host file, path inside] (passwd, resolv.conf). */
  files: [string, string][];
  network: NetworkPolicy;
  /** Applied inside the sandbox with setrlimit when there is no cgroup to bound the whole tree (0 = none). */
  rlimits: { dataBytes: number; processes: number };
}

export interface WrappedCommand {
  command: string;
  args: string[];
  /** bwrap writes {"child-pid"} to fd 4 and waits for a byte on fd 5 before running the agent. */
  handshake: boolean;
}

export interface Sandbox {
  readonly kind: "bwrap" | "none";
  wrap(spec: SandboxSpec): WrappedCommand;
}

const SYSTEM_LINKS: [string, string][] = [
  ["usr/bin", "/bin"],
  ["usr/sbin", "/sbin"],
  ["usr/lib", "/lib"],
  ["usr/lib64", "/lib64"],
];

/** The uid and gid an agent has inside its user namespace (files it writes show as this user). */
export const INNER_UID = 1000;

/** Runs the command under `ulimit`s, inside the sandbox (a host-side shell would see nothing of the agent's). */
function withRlimits(command: string, args: string[], rlimits: SandboxSpec["rlimits"]): string[] {
  const limits: string[] = [];
  if (rlimits.dataBytes > 0) limits.push(`ulimit -d ${Math.max(1, Math.floor(rlimits.dataBytes / 1024))}`);
  // RLIMIT_NPROC is `-u` in bash and `-p` in dash (Debian's /bin/sh).
  if (rlimits.processes > 0) limits.push(`{ ulimit -u ${rlimits.processes} 2>/dev/null || ulimit -p ${rlimits.processes}; }`);
  if (limits.length === 0) return [command, ...args];
  return ["/bin/sh", "-c", `${limits.join(" && ")} && exec "$0" "$@"`, command, ...args];
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

  wrap(spec: SandboxSpec): WrappedCommand {
    const args = [
      "--die-with-parent",
      "--new-session", // no TIOCSTI into a terminal the coordinator may have
      "--unshare-user",
      "--uid",
      String(INNER_UID),
      "--gid",
      String(INNER_UID),
      "--disable-userns",
      "--unshare-pid",
      "--unshare-ipc",
      "--unshare-uts",
      "--unshare-cgroup",
      ...(spec.network === "host" ? [] : ["--unshare-net"]),
      "--cap-drop",
      "ALL",
      "--hostname",
      "podium-agent",
      ...this.system,
      "--proc",
      "/proc",
      "--dev",
      "/dev",
    ];
    for (const [file, target] of spec.files) args.push("--ro-bind", file, target);
    if (spec.tmp) args.push("--bind", spec.tmp, "/tmp");
    else args.push("--size", String(spec.tmpBytes), "--perms", "1777", "--tmpfs", "/tmp");
    for (const dir of [...new Set(spec.readOnly)]) args.push("--ro-bind", dir, dir);
    args.push("--bind", spec.workspace, spec.workspace, "--bind", spec.home, spec.home, "--chdir", spec.workspace);
    args.push("--info-fd", String(INFO_FD), "--block-fd", String(BLOCK_FD));
    return { command: this.bwrap, args: [...args, "--", ...withRlimits(spec.command, spec.args, spec.rlimits)], handshake: true };
  }
}

/** No isolation beyond the outer uid (when root), the cwd, the environment and the rlimits. */
export class NoSandbox implements Sandbox {
  readonly kind = "none";
  wrap(spec: SandboxSpec): WrappedCommand {
    const [command = spec.command, ...args] = withRlimits(spec.command, spec.args, spec.rlimits);
    return { command, args, handshake: false };
  }
}

/** Why bubblewrap cannot isolate agents here, or undefined when it can (user namespaces included). */
export function bubblewrapProblem(bwrap = "bwrap"): string | undefined {
  const probe = spawnSync(
    bwrap,
    ["--die-with-parent", "--unshare-user", "--disable-userns", "--unshare-pid", "--unshare-net", "--cap-drop", "ALL", ...systemBinds(), "--proc", "/proc", "--dev", "/dev", "--", "/bin/true"],
    { timeout: 5000, stdio: ["ignore", "ignore", "pipe"], encoding: "utf8", ...(process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {}) },
  );
  if (probe.error) return `${bwrap} cannot run (${(probe.error as NodeJS.ErrnoException).code ?? probe.error.message}); install bubblewrap`;
  if (probe.status !== 0) return `${bwrap} cannot create an unprivileged user namespace here: ${probe.stderr.trim().split("\n")[0] ?? `exit ${probe.status}`}`;
  return undefined;
}

export const UNSANDBOXED_WARNING =
  "agents run WITHOUT a sandbox: they can read and write whatever the coordinator's user can, reach every local service, and " +
  "use unbounded resources except the rlimits; install bubblewrap (apt-get install bubblewrap) with unprivileged user namespaces to isolate them";

/**
 * "bwrap" requires a working bubblewrap (the coordinator's default: it refuses to run agents otherwise);
 * "auto" (podium dev) uses it when it works and warns loudly, once, otherwise; "none" disables it.
 */
export function createSandbox(mode: SandboxMode, warn: (message: string) => void, bwrap = "bwrap"): Sandbox {
  if (mode === "none") {
    warn(`started with --unsandboxed: ${UNSANDBOXED_WARNING}`);
    return new NoSandbox();
  }
  const problem = bubblewrapProblem(bwrap);
  if (!problem) return new BubblewrapSandbox(bwrap);
  if (mode === "bwrap") throw new Error(`cannot sandbox agents: ${problem}. Start with --unsandboxed to run agents without isolation (docs/security.md)`);
  warn(`${problem}: ${UNSANDBOXED_WARNING}`);
  return new NoSandbox();
}
