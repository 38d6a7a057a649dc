/**
 * Everything that isolates one agent, put together per launch (docs/security.md): the bubblewrap
 * sandbox, the agent's own outer uid when the coordinator is root, its cgroup (pids, memory, CPU for
 * the whole tree), its network namespace's egress, and its quota-limited disk (workspace, HOME, /tmp).
 * InstanceManager asks for a launch, spawns what it returns, and releases it when the process ended.
 */
import fs from "node:fs";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import type { AgentNetworkPolicy } from "../../registry/bundle-manifest.js";
import type { Logger } from "../../shared/logger.js";
import { errorMessage } from "../../shared/errors.js";
import type { SandboxPids } from "../agent-process.js";
import type { InstanceLimits } from "../instance-limits.js";
import { createAgentCgroups, type AgentCgroup, type AgentCgroups } from "./agent-cgroups.js";
import { createAgentNetworks, type AgentNetworks, type EgressAllowRule } from "./agent-network.js";
import { createAgentVolumes, type AgentVolume, type AgentVolumes } from "./agent-volumes.js";
import { AgentUids, DEFAULT_AGENT_UID_RANGE, type UidRange } from "./agent-uids.js";
import { NOBODY, unreachableBy } from "./reachable.js";
import { createSandbox, INNER_UID, type Sandbox, type SandboxMode } from "./sandbox.js";
import { sandboxSystemFiles, type SandboxSystemFiles } from "./sandbox-system-files.js";
import { chownTree, ownerOf } from "./volume-tree.js";

export interface AgentSandboxesOptions {
  coordinatorId: string;
  dataDir: string;
  /** "bwrap" (coordinator default): refuse to run agents without bubblewrap; "auto" (dev): warn; "none": --unsandboxed. */
  mode: SandboxMode;
  bwrap?: string;
  /** Outer uids for agents when the coordinator is root. */
  uidRange?: UidRange;
  /** Private destinations agents may reach anyway (`--agent-network-allow CIDR[:port]`). */
  networkAllow?: EgressAllowRule[];
  logger: Logger;
  /** Whole-tree limits with cgroups (default: when the coordinator can create them). */
  cgroups?: boolean;
  /** Disk quota with a loop-mounted filesystem per agent (default: when the coordinator can mount). */
  volumes?: boolean;
  /** What every agent must reach (runtime, SDKs): checked at start when agents get their own users. */
  runtimePaths?: string[];
}

export interface AgentLaunchRequest {
  agentId: string;
  instanceId: string;
  agentDir: string;
  command: string;
  args: string[];
  readOnly: string[];
  limits: InstanceLimits;
  network: AgentNetworkPolicy;
  signal?: AbortSignal;
}

export interface AgentLaunch {
  command: string;
  args: string[];
  uid?: number;
  gid?: number;
  workspace: string;
  home: string;
  prepare?: (pids: SandboxPids, signal: AbortSignal) => Promise<void>;
  /** The agent's code may run once this settled (its egress is attached); `init` waits for it. */
  beforeInit?: Promise<void>;
  /** CPU of the agent's whole tree, µs (undefined without a cgroup). */
  cpuUsageMicros(): number | undefined;
  /** Why the platform's limits ended the process (OOM), read after it exited. */
  exitReason(): string | undefined;
  /**
   * Frees the cgroup, the egress and the disk; call once the process exited. `keepVolume` (a hibernation):
   * the disk may stay mounted for the agent's next launch (agent-volumes.ts, `linger`).
   */
  release(options?: { keepVolume?: boolean }): Promise<void>;
}

export class AgentSandboxes {
  readonly sandbox: Sandbox;
  readonly uids: AgentUids | undefined;
  private readonly files: SandboxSystemFiles;
  private readonly cgroups: AgentCgroups | undefined;
  private readonly volumes: AgentVolumes | undefined;
  private networks: Promise<AgentNetworks> | undefined;
  private readonly checked = new Set<string>();
  /** Unmounts volumes a killed coordinator left behind, before the first launch. */
  private readonly swept: Promise<unknown>;

  constructor(private readonly options: AgentSandboxesOptions) {
    const { logger } = options;
    this.sandbox = createSandbox(options.mode, (message) => logger.warn(message), options.bwrap);
    const root = process.getuid?.() === 0;
    // Agents' outer uids search (never list) the data dir on their way to their own workspace.
    for (const dir of [options.dataDir, path.join(options.dataDir, "agents")]) {
      fs.mkdirSync(dir, { recursive: true });
      if (root) fs.chmodSync(dir, 0o711);
    }
    const blocked = root ? [path.join(options.dataDir, "agents"), ...(options.runtimePaths ?? [])].map((p) => [p, unreachableBy(p, NOBODY, NOBODY)] as const).find(([, b]) => b) : undefined;
    if (blocked && this.sandbox.kind === "bwrap") {
      const problem = `agents run as unprivileged users and cannot reach ${blocked[0]}: ${blocked[1]} is not searchable by others (chmod o+x it, or put Podium and its data dir where others may search, e.g. under /opt and /var/lib)`;
      if (options.mode === "bwrap") throw new Error(problem);
      // podium dev in a private home: the developer's own agents still get namespaces, not their own users.
      logger.warn(`${problem}; agents run WITHOUT their own unprivileged users (they keep namespaces and dropped capabilities, but root-owned files they can see are readable)`);
    }
    this.uids = root && !blocked ? new AgentUids(path.join(options.dataDir, "sandbox", "uids"), options.uidRange ?? DEFAULT_AGENT_UID_RANGE) : undefined;
    this.files = sandboxSystemFiles(path.join(options.dataDir, "sandbox"), INNER_UID);
    this.cgroups = options.cgroups === false ? undefined : createAgentCgroups({ coordinatorId: options.coordinatorId, logger });
    if (this.cgroups && this.cgroups.kind === "none") {
      logger.warn(`no cgroups for agents (${this.cgroups.reason}): pids and memory are bounded per process with rlimits, idle CPU is not bounded (docs/security.md)`);
    }
    // New agents' volumes take images formatted ahead from a directory only root reaches (spare-images.ts).
    this.volumes = options.volumes === false ? undefined : createAgentVolumes({ logger, mount: { spares: { dir: path.join(options.dataDir, "sandbox", "spare-images") } } });
    if (this.volumes && !this.volumes.enforced) {
      logger.warn(`no per-agent disk volumes (${this.volumes.reason}): the workspace quota is checked after each turn only (docs/security.md)`);
    }
    this.swept = this.volumes?.enforced
      ? this.volumes.sweep(options.dataDir).catch((err: unknown) => logger.warn(`unmounting left-over agent volumes failed: ${errorMessage(err)}`))
      : Promise.resolve();
  }

  /** Mounts a stopped agent's volume for a host-side write into its workspace (a file restore). */
  async mountWorkspace(agentDir: string, signal?: AbortSignal): Promise<{ release(): Promise<void> } | undefined> {
    await this.swept;
    return this.volumes?.enforced ? this.volumes.openExisting(agentDir, signal) : undefined;
  }

  /** Unmounts the agent's disk if it only stayed mounted for a next launch (before its directory moves). */
  async unmountIdleVolume(agentDir: string): Promise<void> {
    await this.volumes?.unmountIdle(agentDir);
  }

  /** Settles once volumes a killed coordinator left mounted were unmounted (before anything else touches agent dirs). */
  ready(): Promise<unknown> {
    return this.swept;
  }

  /** Frees what was assigned to an agent that never ran and never will (its uid): an unclaimed warm runner. */
  forgetAgent(agentId: string): void {
    this.uids?.release(agentId);
  }

  /** One line for the start-up log: what isolates agents here. */
  describe(): string {
    const parts = [this.sandbox.kind === "bwrap" ? "bubblewrap" : "NO sandbox"];
    if (this.uids) parts.push(`uids ${this.uids.range.first}-${this.uids.range.last}`);
    parts.push(`cgroups ${this.cgroups?.kind ?? "off"}`);
    parts.push(`disk quota ${this.volumes?.enforced ? "enforced" : "after turns"}`);
    return parts.join(", ");
  }

  private egress(): Promise<AgentNetworks> {
    this.networks ??= createAgentNetworks({
      coordinatorId: this.options.coordinatorId,
      ...(this.uids ? { uidRange: this.uids.range } : {}),
      allow: this.options.networkAllow ?? [],
      logger: this.options.logger,
    }).then((networks) => {
      if (!networks.available) {
        this.options.logger.warn(
          this.options.mode === "bwrap"
            ? `agents with network "egress" cannot start: ${networks.reason}`
            : `no network namespaces with egress (${networks.reason}): agents share this host's network; install slirp4netns to isolate them`,
        );
      } else if (!networks.filtered) this.options.logger.warn(`agents' egress is NOT filtered (${networks.reason}): they can reach private addresses and this host's services (docs/security.md)`);
      return networks;
    });
    return this.networks;
  }

  async launch(request: AgentLaunchRequest): Promise<AgentLaunch> {
    const { agentDir, limits } = request;
    await this.swept;
    const bwrap = this.sandbox.kind === "bwrap";
    const uid = this.uids?.uidFor(request.agentId);
    const owner = uid !== undefined ? { uid, gid: uid } : undefined;
    let networks = bwrap && request.network === "egress" ? await this.egress() : undefined;
    if (networks && !networks.available) {
      if (this.options.mode === "bwrap") {
        this.options.logger.error(`cannot give agent ${request.agentId} network egress: ${networks.reason}`);
        throw new ConnectError("this coordinator cannot give agents network egress (see the coordinator's log)", Code.FailedPrecondition);
      }
      // podium dev without slirp4netns: the developer's own agents share the host's network (warned at start).
      networks = undefined;
      request = { ...request, network: "host" };
    }
    if (request.network === "host") this.options.logger.warn(`agent ${request.agentId} runs with network "host": it shares this host's network`, { agent_id: request.agentId });
    fs.mkdirSync(agentDir, { recursive: true, mode: 0o711 });
    if (owner) fs.chmodSync(agentDir, 0o711);
    let volume: AgentVolume | undefined;
    let workspace = path.join(agentDir, "workspace");
    let home = path.join(agentDir, "home");
    let tmp: string | undefined;
    if (this.volumes?.enforced) {
      volume = await this.volumes.open(agentDir, limits.diskBytes, owner, request.signal);
      ({ workspace, home, tmp } = volume);
    } else {
      for (const dir of [workspace, home]) fs.mkdirSync(dir, { recursive: true });
      // Restored or pre-sandbox files belong to root: give the tree to the agent (fds, never a link).
      if (owner) {
        for (const dir of [workspace, home]) {
          const current = ownerOf(dir);
          if (current.uid !== owner.uid || current.gid !== owner.gid) chownTree(dir, owner);
        }
      }
    }
    if (owner) this.checkReachable([workspace, home, ...request.readOnly], owner.uid);
    // Without bwrap nothing holds the agent back until it is in its cgroup: rlimits bound it instead.
    const cgroups = !bwrap || this.cgroups?.kind === "none" ? undefined : this.cgroups;
    const wrapped = this.sandbox.wrap({
      command: request.command,
      args: request.args,
      workspace,
      home,
      ...(tmp ? { tmp } : {}),
      tmpBytes: Math.min(limits.diskBytes, limits.memoryBytes) / 4,
      readOnly: request.readOnly,
      files: [...this.files.common, ...(request.network === "egress" ? this.files.egress : [])],
      network: request.network,
      // RLIMIT_DATA as well as the cgroup: one process asking for too much gets ENOMEM (a MemoryError the
      // agent can handle) before the whole tree meets the cgroup's OOM killer.
      rlimits: { dataBytes: limits.memoryBytes, processes: cgroups || !owner ? 0 : limits.pids },
    });
    let cgroup: AgentCgroup | undefined;
    // slirp4netns's launcher starts now and waits for the sandbox's pid, so its start-up overlaps bwrap's.
    let sandboxPid: { resolve(pid: number): void; reject(err: Error): void } | undefined;
    const pid = new Promise<number>((resolve, reject) => (sandboxPid = { resolve, reject }));
    pid.catch(() => undefined); // rejected by a release before the sandbox started, maybe before attach awaits it
    const attaching = networks?.attach({
      pid,
      ...(owner ? { uid: owner.uid, gid: owner.gid } : {}),
      ...(request.signal ? { signal: request.signal } : {}),
    });
    attaching?.catch(() => undefined); // awaited in prepare; a launch that never ran rejects it in release
    const release = async (releaseOptions?: { keepVolume?: boolean }) => {
      sandboxPid?.reject(new Error("the agent's sandbox did not start"));
      (await attaching?.catch(() => undefined))?.close();
      await cgroup?.remove().catch((err: unknown) => this.options.logger.warn(`removing an agent's cgroup failed: ${errorMessage(err)}`));
      await volume?.release({ linger: releaseOptions?.keepVolume === true }).catch((err: unknown) => this.options.logger.warn(`unmounting an agent's disk failed: ${errorMessage(err)}`));
    };
    try {
      cgroup = cgroups?.create(request.instanceId, { pids: limits.pids, memoryBytes: limits.memoryBytes, cpuWeight: limits.cpuWeight });
    } catch (err) {
      await release();
      throw err;
    }
    const launch: AgentLaunch = {
      command: wrapped.command,
      args: wrapped.args,
      ...(owner ? { uid: owner.uid, gid: owner.gid } : {}),
      workspace,
      home,
      cpuUsageMicros: () => cgroup?.cpuUsageMicros(),
      exitReason: () => (cgroup?.oomKilled() ? `out of memory: the agent's processes used more than ${Math.round(limits.memoryBytes / 1048576)} MiB` : undefined),
      release,
    };
    if (attaching) {
      const beforeInit = attaching.then(() => undefined);
      beforeInit.catch(() => undefined); // a launch released before it started never awaits it (no unhandled rejection)
      launch.beforeInit = beforeInit;
    }
    if (wrapped.handshake) {
      launch.prepare = async (pids) => {
        // Off the event loop (AgentCgroup.add): each move waits ~6-14 ms in the kernel.
        await cgroup?.add(pids.outer);
        await cgroup?.add(pids.sandbox);
        sandboxPid?.resolve(pids.sandbox);
      };
    }
    return launch;
  }

  /** Throws FAILED_PRECONDITION naming a path the agent's uid cannot reach (checked once per path). */
  private checkReachable(paths: string[], uid: number): void {
    for (const target of paths) {
      if (this.checked.has(target)) continue;
      const blocked = unreachableBy(target, uid, uid);
      if (blocked) {
        // The operator's to fix, in the coordinator's log; the client learns no host path.
        this.options.logger.error(
          `agents run as unprivileged users and cannot reach ${target}: ${blocked} is not searchable by others (chmod o+x it, or install the runtime / choose a data dir under e.g. /opt or /var/lib)`,
        );
        throw new ConnectError("this coordinator cannot start sandboxed agents: a path they need is not reachable by their users (see the coordinator's log)", Code.FailedPrecondition);
      }
      if (!target.startsWith(this.options.dataDir)) this.checked.add(target);
    }
  }

  async close(): Promise<void> {
    const networks = await this.networks?.catch(() => undefined);
    await networks?.close();
    await this.cgroups?.close();
    await this.volumes?.close();
  }
}
