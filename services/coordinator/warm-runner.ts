/**
 * Making, claiming and discarding one warm runner (runner-pool.ts says why and when). A warm runner is
 * a new agent opened ahead of time by openAgent(), like a cold start, except that its runner is spawned
 * without an entry module and its sandbox sees `<agentDir>/bundle` read-only: an empty directory until a
 * create claims it and the deployment's bundle is hard-linked in (the same files, read-only to the agent
 * through the bind mount; the links are removed when the instance ends).
 */
import fs from "node:fs";
import path from "node:path";
import { AgentProcess } from "./agent-process.js";
import { openAgent, type OpenAgentDeps, type OpenedAgent } from "./open-agent.js";
import type { InstanceLimits } from "./instance-limits.js";
import { agentCommand, runtimeReadOnlyPaths, type AgentRuntime, type RuntimeCommands } from "./runtime-commands.js";
import type { WarmRunner } from "./runner-pool.js";
import type { AgentNetworkPolicy } from "../registry/bundle-manifest.js";
import type { Logger } from "../shared/logger.js";
import { newId } from "../shared/ids.js";

/** Marks an agent directory as an unclaimed warm runner's: removed at claim; left-overs are deleted at start. */
export const WARM_MARKER = "warm-runner";
/** Bundles of more entries than this start cold (linking them would cost more than a spawn). */
export const MAX_LINKED_BUNDLE_ENTRIES = 2000;

export interface WarmAgent extends WarmRunner, OpenedAgent {
  readonly agentDir: string;
  /** Where the claimed bundle is linked (the same path inside the sandbox). */
  readonly bundleDir: string;
  readonly limits: InstanceLimits;
  readonly network: AgentNetworkPolicy;
}

export interface WarmRunnerDeps extends OpenAgentDeps {
  commands: RuntimeCommands;
  agentDir(agentId: string): string;
  logger: Logger;
}

export async function makeWarmRunner(deps: WarmRunnerDeps, runtime: AgentRuntime, limits: InstanceLimits, network: AgentNetworkPolicy, signal: AbortSignal): Promise<WarmAgent> {
  const agentId = newId("agent");
  const instanceId = newId("inst");
  const agentDir = deps.agentDir(agentId);
  const bundleDir = path.join(agentDir, "bundle");
  fs.mkdirSync(bundleDir, { recursive: true, mode: 0o755 });
  fs.writeFileSync(path.join(agentDir, WARM_MARKER), `${runtime}\n`);
  const [command, args] = agentCommand(deps.commands, runtime);
  let opened: OpenedAgent;
  try {
    opened = await openAgent(deps, { agentId, instanceId, agentDir, command, args, readOnly: [...runtimeReadOnlyPaths(deps.commands, runtime), bundleDir], limits, network, signal });
  } catch (err) {
    forgetAgentDir(deps, agentId, agentDir);
    throw err;
  }
  const { launch } = opened;
  opened.store.prime();
  const release = launch.release;
  launch.release = async () => {
    await release();
    fs.rmSync(bundleDir, { recursive: true, force: true });
  };
  let prepared: () => void = () => undefined;
  const setUp = launch.prepare ? new Promise<void>((resolve) => (prepared = resolve)) : Promise.resolve();
  const prepare = launch.prepare;
  const process = new AgentProcess({
    command: launch.command,
    args: launch.args,
    cwd: launch.workspace,
    env: opened.processEnv,
    ...(launch.uid !== undefined ? { uid: launch.uid } : {}),
    ...(launch.gid !== undefined ? { gid: launch.gid } : {}),
    ...(prepare
      ? {
          prepare: async (pids, prepareSignal) => {
            await prepare(pids, prepareSignal);
            prepared();
          },
        }
      : {}),
    // Nothing is expected before init; what comes is the runner's own trouble, for the coordinator's log.
    onFrames: (frames) => deps.logger.debug(`a warm ${runtime} runner sent ${frames.length} frame(s) before init`, { agent_id: agentId }),
    onOutput: (stream, line) => deps.logger.warn(`warm ${runtime} runner ${stream}: ${line}`, { agent_id: agentId }),
    onBadFrame: (reason) => deps.logger.warn(`a warm ${runtime} runner sent a malformed frame: ${reason}`, { agent_id: agentId }),
  });
  const runner: WarmAgent = { ...opened, runtime, agentId, instanceId, agentDir, bundleDir, limits, network, process };
  const exited = process.exited.then(() => Promise.reject(new Error(`the runner exited while it was set up`)));
  try {
    // Egress that cannot be attached is the claimed instance's to report (it starts without network, as a cold start does).
    await Promise.race([Promise.all([setUp, launch.beforeInit?.catch(() => undefined)]), exited]);
  } catch (err) {
    await discardWarmRunner(deps, runner);
    throw err;
  }
  exited.catch(() => undefined);
  return runner;
}

/** Links the deployment's bundle into the runner's bundle directory; false when it cannot (start cold). */
export function claimWarmRunner(runner: WarmAgent, sourceDir: string): boolean {
  try {
    linkTree(sourceDir, runner.bundleDir, { left: MAX_LINKED_BUNDLE_ENTRIES });
    fs.rmSync(path.join(runner.agentDir, WARM_MARKER), { force: true });
    return true;
  } catch {
    return false;
  }
}

/** Counts a bundle's entries, up to the most a claim links (memoised by the caller: bundles never change). */
export function bundleFitsWarmRunner(dir: string): boolean {
  const budget = { left: MAX_LINKED_BUNDLE_ENTRIES };
  const count = (current: string): void => {
    for (const entry of fs.readdirSync(current, { withFileTypes: true })) {
      if (--budget.left < 0) throw new RangeError("too many entries");
      if (entry.isDirectory()) count(path.join(current, entry.name));
    }
  };
  try {
    count(dir);
    return true;
  } catch {
    return false;
  }
}

export async function discardWarmRunner(deps: WarmRunnerDeps, runner: WarmAgent): Promise<void> {
  runner.process.kill("SIGKILL");
  await runner.process.exited;
  try {
    runner.workspaceCapture?.close();
    runner.store.close();
  } finally {
    await runner.launch.release();
    forgetAgentDir(deps, runner.agentId, runner.agentDir);
  }
}

/** Removes warm runners' directories a killed coordinator left (call after its volumes were swept). */
export function removeLeftoverWarmRunners(deps: Pick<WarmRunnerDeps, "sandboxes" | "logger">, agentsDir: string): number {
  let removed = 0;
  for (const name of fs.readdirSync(agentsDir)) {
    const dir = path.join(agentsDir, name);
    if (!fs.existsSync(path.join(dir, WARM_MARKER))) continue;
    forgetAgentDir(deps, name, dir);
    removed++;
  }
  if (removed > 0) deps.logger.info(`removed ${removed} unclaimed warm runner(s) left by an earlier run`);
  return removed;
}

function forgetAgentDir(deps: Pick<WarmRunnerDeps, "sandboxes">, agentId: string, agentDir: string): void {
  fs.rmSync(agentDir, { recursive: true, force: true });
  deps.sandboxes.forgetAgent(agentId);
}

/** Hard links (copies across filesystems) of `source`'s tree into the existing directory `target`. */
function linkTree(source: string, target: string, budget: { left: number }): void {
  for (const entry of fs.readdirSync(source, { withFileTypes: true })) {
    if (--budget.left < 0) throw new RangeError("the bundle has too many entries to link");
    const from = path.join(source, entry.name);
    const to = path.join(target, entry.name);
    if (entry.isDirectory()) {
      fs.mkdirSync(to, { mode: 0o755 });
      linkTree(from, to, budget);
    } else if (entry.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(from), to);
    else if (entry.isFile()) {
      try {
        fs.linkSync(from, to);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EXDEV" && (err as NodeJS.ErrnoException).code !== "EPERM") throw err;
        fs.copyFileSync(from, to);
      }
    }
  }
}
