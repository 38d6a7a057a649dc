/**
 * Making, claiming and discarding one warm runner (runner-pool.ts says why and when). A warm runner is
 * a new agent opened ahead of time by openAgent(), like a cold start, except that its runner is spawned
 * without an entry module (it is made once its sandbox is set up and the runner said `waiting`: loaded,
 * rehearsed, reading `init`) and its sandbox sees `<agentDir>/bundle` read-only: an empty directory until a
 * create claims it and the deployment's bundle is copied in (root-owned, read-only to the agent through
 * the bind mount; removed when the instance ends). Copies, not hard links: a link count and change time
 * shared with the bundle cache would tell agents of the same bundle about each other's starts.
 *
 * Unclaimed runners are listed in a register only root reaches, `<dataDir>/sandbox/warm/<agentId>`
 * (nothing in an agent's own directory, which file restores write into, can mark it for deletion). At
 * start, the runners a killed coordinator left are removed from it: only ids of the form newId() makes,
 * and only agents that never started (their logs.db has no row: every start writes one).
 */
import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { AgentProcess } from "./agent-process.js";
import { openAgent, type OpenAgentDeps, type OpenedAgent } from "./open-agent.js";
import type { InstanceLimits } from "./instance-limits.js";
import { agentCommand, runtimeReadOnlyPaths, type AgentRuntime, type RuntimeCommands } from "./runtime-commands.js";
import type { RunnerPool, WarmRunner } from "./runner-pool.js";
import { DEFAULT_NETWORK_POLICY, type AgentNetworkPolicy } from "../registry/bundle-manifest.js";
import type { Logger } from "../shared/logger.js";
import { newId } from "../shared/ids.js";

/** Bundles of more entries or bytes than this start cold (copying them would cost more than a spawn). */
export const MAX_COPIED_BUNDLE_ENTRIES = 2000;
export const MAX_COPIED_BUNDLE_BYTES = 16 * 1024 * 1024;
/** The ids newId("agent") makes: the only names the start-up sweep acts on. */
const WARM_ID = /^agent-[0-9a-z]{16}$/;

/** The register of unclaimed warm runners (root only): one empty file per agent id. */
export function warmRegister(dataDir: string): string {
  return path.join(dataDir, "sandbox", "warm");
}

export interface WarmAgent extends WarmRunner, OpenedAgent {
  readonly agentDir: string;
  /** Where the claimed bundle is copied (the same path inside the sandbox). */
  readonly bundleDir: string;
  readonly limits: InstanceLimits;
  readonly network: AgentNetworkPolicy;
}

export interface WarmRunnerDeps extends OpenAgentDeps {
  commands: RuntimeCommands;
  dataDir: string;
  agentDir(agentId: string): string;
  logger: Logger;
}

export async function makeWarmRunner(deps: WarmRunnerDeps, runtime: AgentRuntime, limits: InstanceLimits, network: AgentNetworkPolicy, signal: AbortSignal): Promise<WarmAgent> {
  const agentId = newId("agent");
  const instanceId = newId("inst");
  const agentDir = deps.agentDir(agentId);
  const bundleDir = path.join(agentDir, "bundle");
  const register = warmRegister(deps.dataDir);
  fs.mkdirSync(register, { recursive: true, mode: 0o700 });
  fs.writeFileSync(path.join(register, agentId), "", { flag: "wx", mode: 0o600 });
  fs.mkdirSync(bundleDir, { recursive: true, mode: 0o755 });
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
  launch.release = async (options) => {
    await release(options);
    fs.rmSync(bundleDir, { recursive: true, force: true });
  };
  let prepared: () => void = () => undefined;
  const setUp = launch.prepare ? new Promise<void>((resolve) => (prepared = resolve)) : Promise.resolve();
  // The runner's `waiting` frame: loaded and rehearsed (the SDKs' warm-up), it reads `init` at once.
  let waited: () => void = () => undefined;
  const waiting = new Promise<void>((resolve) => (waited = resolve));
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
    // Nothing but `waiting` is expected before init; anything else is the runner's own trouble, for the coordinator's log.
    onFrames: (frames) => {
      if (frames.some((frame) => frame.type === "waiting")) waited();
      if (frames.some((frame) => frame.type !== "waiting")) deps.logger.debug(`a warm ${runtime} runner sent ${frames.length} frame(s) before init`, { agent_id: agentId });
    },
    onOutput: (stream, line) => deps.logger.warn(`warm ${runtime} runner ${stream}: ${line}`, { agent_id: agentId }),
    onBadFrame: (reason) => deps.logger.warn(`a warm ${runtime} runner sent a malformed frame: ${reason}`, { agent_id: agentId }),
  });
  const runner: WarmAgent = { ...opened, runtime, agentId, instanceId, agentDir, bundleDir, limits, network, process };
  const exited = process.exited.then(() => Promise.reject(new Error(`the runner exited while it was set up`)));
  let onAbort: () => void = () => undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(new Error("the runner pool closed while the runner was set up"));
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  let timer: NodeJS.Timeout | undefined;
  const tooLong = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the runner did not wait for init within ${limits.startTimeoutMs} ms`)), limits.startTimeoutMs);
  });
  try {
    // Egress that cannot be attached is the claimed instance's to report (it starts without network, as a cold start does).
    await Promise.race([Promise.all([setUp, launch.beforeInit?.catch(() => undefined), waiting]), exited, aborted, tooLong]);
  } catch (err) {
    await discardWarmRunner(deps, runner);
    throw err;
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort);
    exited.catch(() => undefined);
    aborted.catch(() => undefined);
    tooLong.catch(() => undefined);
  }
  return runner;
}

/** Copies the deployment's bundle into the runner's bundle directory; false when it cannot (start cold). */
export function claimWarmRunner(deps: Pick<WarmRunnerDeps, "dataDir">, runner: WarmAgent, sourceDir: string): boolean {
  try {
    copyBundleTree(sourceDir, runner.bundleDir);
  } catch {
    return false;
  }
  unregister(deps.dataDir, runner.agentId);
  return true;
}

/**
 * Regular files and directories (what bundle extraction makes), root-owned, their modes kept; anything
 * else is skipped, and an existing target fails the copy. A plain walk: `fs.cpSync` costs 2-4x as much
 * on a claim's path for a small bundle.
 */
function copyBundleTree(from: string, to: string): void {
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    const source = path.join(from, entry.name);
    const target = path.join(to, entry.name);
    if (entry.isDirectory()) {
      fs.mkdirSync(target);
      copyBundleTree(source, target);
      fs.chmodSync(target, fs.statSync(source).mode & 0o7777);
    } else if (entry.isFile()) fs.copyFileSync(source, target, fs.constants.COPYFILE_EXCL);
  }
}

/** Whether a claim may copy the bundle: few enough entries and bytes (memoised by the caller: bundles never change). */
export function bundleFitsWarmRunner(dir: string): boolean {
  const budget = { entries: MAX_COPIED_BUNDLE_ENTRIES, bytes: MAX_COPIED_BUNDLE_BYTES };
  const count = (current: string): void => {
    for (const entry of fs.readdirSync(current, { withFileTypes: true })) {
      const full = path.join(current, entry.name);
      if (--budget.entries < 0) throw new RangeError("too many entries");
      if (entry.isDirectory()) count(full);
      else if (entry.isFile() && (budget.bytes -= fs.statSync(full).size) < 0) throw new RangeError("too many bytes");
    }
  };
  try {
    count(dir);
    return true;
  } catch {
    return false;
  }
}

/** Whether `agentId` is an unclaimed warm runner's (a create must not name it). */
export function isWarmRunner(dataDir: string, agentId: string): boolean {
  return WARM_ID.test(agentId) && fs.existsSync(path.join(warmRegister(dataDir), agentId));
}

/** Takes `agentId` off the register, durably (a crash must not find a claimed agent listed). */
function unregister(dataDir: string, agentId: string): void {
  const register = warmRegister(dataDir);
  fs.rmSync(path.join(register, agentId), { force: true });
  // Off the create's path: the directory's fsync completes in the background.
  fs.open(register, "r", (err, fd) => {
    if (err) return;
    fs.fsync(fd, () => fs.close(fd, () => undefined));
  });
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

/**
 * Removes the warm runners a killed coordinator left (call after its volumes were swept): each registered
 * id of newId()'s form whose agent never started. A registered agent that did start (its claim's unregister
 * was lost in a crash) only leaves the register.
 */
export function removeLeftoverWarmRunners(deps: Pick<WarmRunnerDeps, "sandboxes" | "logger" | "dataDir" | "agentDir">): number {
  const register = warmRegister(deps.dataDir);
  let names: string[];
  try {
    names = fs.readdirSync(register);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    try {
      const entry = fs.lstatSync(path.join(register, name));
      if (!entry.isFile() || !WARM_ID.test(name)) continue;
      const agentDir = deps.agentDir(name);
      if (!everStarted(agentDir)) {
        forgetAgentDir(deps, name, agentDir);
        removed++;
      }
      fs.rmSync(path.join(register, name), { force: true });
    } catch (err) {
      deps.logger.warn(`removing a left-over warm runner failed: ${err instanceof Error ? err.message : String(err)}`, { agent_id: name });
    }
  }
  if (removed > 0) deps.logger.info(`removed ${removed} unclaimed warm runner(s) left by an earlier run`);
  return removed;
}

/** Whether an agent directory's logs.db has a row (every start writes one): never true of an unclaimed runner. */
function everStarted(agentDir: string): boolean {
  const file = path.join(agentDir, "logs.db");
  if (!fs.existsSync(file)) return false;
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return db.prepare("SELECT 1 FROM logs LIMIT 1").get() !== undefined;
  } finally {
    db.close();
  }
}

function forgetAgentDir(deps: Pick<WarmRunnerDeps, "sandboxes" | "dataDir">, agentId: string, agentDir: string): void {
  fs.rmSync(agentDir, { recursive: true, force: true });
  fs.rmSync(path.join(warmRegister(deps.dataDir), agentId), { force: true });
  deps.sandboxes.forgetAgent(agentId);
}

/** The limits a launch is made with (sandbox, cgroup, disk): a warm runner serves deployments that keep the coordinator's. */
const LAUNCH_LIMITS = ["memoryBytes", "pids", "cpuWeight", "diskBytes"] as const satisfies readonly (keyof InstanceLimits)[];

/**
 * Whether warm runners can serve a deployment: the coordinator's launch limits (`base`) and network, and a
 * bundle small enough to copy (`copyable` caches that per bundle directory; bundles never change).
 */
export function fitsWarmRunner(copyable: Map<string, boolean>, bundleDir: string, base: InstanceLimits, settings: { limits: InstanceLimits; network: AgentNetworkPolicy }): boolean {
  if (settings.network !== DEFAULT_NETWORK_POLICY || LAUNCH_LIMITS.some((key) => settings.limits[key] !== base[key])) return false;
  let fits = copyable.get(bundleDir);
  if (fits === undefined) copyable.set(bundleDir, (fits = bundleFitsWarmRunner(bundleDir)));
  return fits;
}

/** A ready warm runner of `runtime` with the bundle copied in, or undefined (the create starts cold). */
export function takeWarmRunner(pool: RunnerPool<WarmAgent>, deps: WarmRunnerDeps, runtime: AgentRuntime, bundleDir: string): WarmAgent | undefined {
  const runner = pool.take(runtime);
  if (!runner) return undefined;
  if (claimWarmRunner(deps, runner, bundleDir)) return runner;
  deps.logger.warn("copying a bundle into a warm runner failed; starting the agent cold", { agent_id: runner.agentId });
  void discardWarmRunner(deps, runner).catch(() => undefined);
  return undefined;
}
