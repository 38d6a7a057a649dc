/**
 * Owns a coordinator's instances: resolves deployments, opens each agent's databases and workspace,
 * spawns the process, enforces one live instance per agent, and stops everything on close.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { AgentInstance } from "./agent-instance.js";
import { DEFAULT_INSTANCE_LIMITS, DEFAULT_LIMIT_MAXIMA, type InstanceLimits } from "./instance-limits.js";
import { precompilePython, type RuntimeCommands } from "./runtime-commands.js";
import { throwIfCancelled, type WorkspaceFactory } from "./open-agent.js";
import { incarnationOf, openIncarnation, type IncarnationDeps } from "./incarnation.js";
import { DEFAULT_WARM_RUNNERS, RunnerPool, type RunnerPoolStats } from "./runner-pool.js";
import { EarlyAnswers } from "./early-answers.js";
import { discardWarmRunner, fitsWarmRunner, isWarmRunner, makeWarmRunner, removeLeftoverWarmRunners, takeWarmRunner, type WarmAgent, type WarmRunnerDeps } from "./warm-runner.js";
import { validateAgentEnv } from "./agent-env.js";
import { IdleCpuWatch } from "./idle-cpu-watch.js";
import { StartAdmission, startLimitsFor, type StartLimits } from "./start-admission.js";
import { StoreTemplate } from "./store-template.js";
import { IncarnationRuns } from "./incarnation-runs.js";
import { compileInstanceFactories, type AgentStoreFactory, type InstanceFactories } from "./instance-factories.js";
import type { AgentSandboxes } from "./sandbox/agent-sandboxes.js";
import { DEFAULT_NETWORK_POLICY } from "../registry/bundle-manifest.js";
import { DeploymentLookup, readDeploymentSettings, type DeploymentSettings } from "./deployment-settings.js";
import { AgentStore, IDLE_MEMORY_RELEASE_MS } from "./store/agent-store.js";
import type { BundleCache } from "../registry/bundle-cache.js";
import type { CoordinatorLoad } from "../cluster/cluster-keys.js";
import type { AgentReplication } from "../replication/agent-replication.js";
import { assertAgentId } from "../replication/stale-copies.js";
import { replicationNotConfigured } from "./replication-routes.js";
import { resolveDeploymentId, type DeploymentRecord, type DeploymentRegistry } from "../registry/deployment-registry.js";
import { newId, isValidClientId } from "../shared/ids.js";
import type { Logger } from "../shared/logger.js";
import { errorMessage } from "../shared/errors.js";
import { HibernationTimers } from "./hibernation-timers.js";
import { ScheduleRunner } from "./schedule-runner.js";
import { InstanceRegistry, restoreInstances } from "./instance-registry.js";
import type { ScheduleFrame } from "./agent-protocol.js";
import { countRecorded, newCoordinatorCounts } from "./coordinator-counts.js";
import type { AgentProcessFactory, SentMessage, TurnTrace } from "./agent-instance-options.js";
import type { JsonObject } from "../shared/json.js";
import type { BusyPolicy } from "../shared/busy-policy.js";

export interface CreateInstanceParams {
  deploymentId: string;
  agentId?: string;
  secrets?: Record<string, string>;
  environment?: Record<string, string>;
}

export type { WorkspaceFactory } from "./open-agent.js";

export interface InstanceManagerOptions {
  coordinatorId: string;
  dataDir: string;
  registry: DeploymentRegistry;
  bundles: BundleCache;
  commands: RuntimeCommands;
  limits?: Partial<InstanceLimits>;
  /** The most a deployment's podium.json `limits` may ask for. */
  limitMaxima?: Partial<InstanceLimits>;
  logger: Logger;
  /** PATH given to agent processes. */
  agentPath: string;
  /** Maximum live instances on this coordinator. */
  capacity: number;
  /** How long ended instances stay visible to GetInstance. */
  endedRetentionMs?: number;
  workspaces?: WorkspaceFactory;
  /** Isolation of every agent: sandbox, uid, cgroup, network, disk (sandbox/agent-sandboxes.ts). */
  sandboxes: AgentSandboxes;
  /** Durability (docs/replication.md): lease + restore before an agent starts, Litestream while it runs. */
  replication?: AgentReplication;
  /** Admission of starts (start-admission.ts); defaults from `startLimitsFor()`. */
  starts?: Partial<StartLimits>;
  /** Warm runners kept per runtime once it was asked for (runner-pool.ts); 0 disables them. Default DEFAULT_WARM_RUNNERS. */
  warmRunners?: number;
  /** Makes each agent process (instance-factories.ts); default: a claimed warm runner or a sandboxed spawn. */
  processFactory?: AgentProcessFactory;
  /** Opens what one run of an agent needs (its launch, databases, workspace); default: openAgent, sandboxed. */
  storeFactory?: AgentStoreFactory;
}

export class InstanceManager {
  private readonly instances = new Map<string, AgentInstance>();
  private readonly liveByAgent = new Map<string, string>();
  private readonly starting = new Set<string>();
  /** Deployment records, read once per burst and kept for when the registry is unreachable. */
  private readonly deployments: DeploymentLookup;
  /** Python bundle directories already compiled to bytecode. */
  private readonly compiled = new Map<string, Promise<void>>();
  private readonly limits: InstanceLimits;
  private readonly maxima: InstanceLimits;
  private readonly idleCpu: IdleCpuWatch;
  /** Bounds the start-up work in flight, so a burst of creates cannot starve heartbeats and running agents. */
  readonly admission: StartAdmission;
  /** The instances' processes while they run, and the close of what each opened (incarnation-runs.ts). */
  private readonly runs: IncarnationRuns;
  /** What instances are made from (instance-factories.ts): the real process and stores unless given. */
  private readonly factories: InstanceFactories;
  /** Sandboxed runners made ahead of time for new agents (runner-pool.ts). */
  private readonly warm: RunnerPool<WarmAgent>;
  private readonly incarnationDeps: IncarnationDeps;
  /** Bundle directories small enough to copy into a warm runner (bundles never change once materialized). */
  private readonly copyable = new Map<string, boolean>();
  /** Creates of warm runners answered before `ready` (early-answers.ts). */
  private readonly early = new EarlyAnswers();
  private draining = false;
  /** Wakes in progress by instance id (callers share one). */
  private readonly waking = new Map<string, Promise<void>>();
  /** Instances a create returned by waking them (resumes), not by starting them. */
  private readonly resumes = new WeakSet<AgentInstance>();
  private readonly hibernation = new HibernationTimers<AgentInstance>((instance) => this.hibernate(instance));
  /** An instance idle for IDLE_MEMORY_RELEASE_MS gives its databases' page caches back (AgentInstance.releaseMemory). */
  private readonly memoryRelease = new HibernationTimers<AgentInstance>((instance) => instance.releaseMemory());
  /** Fires the agents' schedules (waking hibernated instances) and answers their schedule frames. */
  private readonly schedules: ScheduleRunner;
  /** This coordinator's instances on disk; undefined with replication, or when it cannot be opened (no restore). */
  private readonly registry: InstanceRegistry | undefined;
  /** Monotonic counts since start (metrics): instances that became ready, ended ones by final status, hibernations and wakes. */
  readonly counts = newCoordinatorCounts();
  private closed = false;

  constructor(private readonly options: InstanceManagerOptions) {
    this.limits = { ...DEFAULT_INSTANCE_LIMITS, ...options.limits };
    this.maxima = { ...DEFAULT_LIMIT_MAXIMA, ...options.limitMaxima };
    this.idleCpu = new IdleCpuWatch();
    this.deployments = new DeploymentLookup(options.registry, options.logger);
    this.schedules = new ScheduleRunner({ wake: (instance) => this.wake(instance), logger: options.logger });
    // New agents' databases are copied from it (off the event loop) instead of created in place.
    const storeTemplate = new StoreTemplate(path.join(options.dataDir, "store-template"), options.logger);
    const starts = startLimitsFor(os.availableParallelism(), options.starts);
    this.admission = new StartAdmission({ ...starts, name: options.coordinatorId });
    this.runs = new IncarnationRuns({
      idleCpu: this.idleCpu,
      schedules: this.schedules,
      replication: options.replication,
      logger: options.logger,
      agentDir: (agentId) => this.agentDir(agentId),
      concurrency: starts.concurrency,
    });
    fs.mkdirSync(path.join(options.dataDir, "agents"), { recursive: true });
    this.compiled.set(path.dirname(options.commands.pyRunner), precompilePython(options.commands, path.dirname(options.commands.pyRunner)));
    const warmDeps: WarmRunnerDeps = {
      sandboxes: options.sandboxes,
      storeTemplate,
      ...(options.workspaces ? { workspaces: options.workspaces } : {}),
      agentPath: options.agentPath,
      commands: options.commands,
      dataDir: options.dataDir,
      agentDir: (agentId) => this.agentDir(agentId),
      logger: options.logger,
    };
    this.factories = compileInstanceFactories(options, warmDeps);
    this.incarnationDeps = { warm: warmDeps, commands: options.commands, open: this.factories.storeFactory, ...(options.replication ? { replication: options.replication } : {}) };
    // Left-overs of a killed run go first (after its volumes were unmounted), before any runner is made.
    const swept = options.sandboxes.ready().then(() => removeLeftoverWarmRunners(warmDeps));
    swept.catch((err: unknown) => options.logger.warn(`removing left-over warm runners failed: ${errorMessage(err)}`));
    this.warm = new RunnerPool<WarmAgent>({
      size: options.warmRunners ?? DEFAULT_WARM_RUNNERS,
      make: async (runtime, signal) => {
        await swept.catch(() => undefined);
        if (runtime === "python") await this.compiled.get(path.dirname(options.commands.pyRunner));
        return makeWarmRunner(warmDeps, runtime, this.limits, DEFAULT_NETWORK_POLICY, signal);
      },
      discard: (runner) => discardWarmRunner(warmDeps, runner),
      logger: options.logger,
    });
    try {
      // A replicated coordinator's agents may have moved while it was down (resumed elsewhere from S3): it
      // does not bring its instances back, they resume by agent_id wherever a client asks.
      if (!options.replication) this.registry = InstanceRegistry.open(options.dataDir);
    } catch (err) {
      options.logger.warn(`cannot open the instance registry; instances will not survive a restart: ${errorMessage(err)}`);
    }
    this.restoreRegistered();
  }

  /** Warm runners ready per runtime, and how many creates they served (metrics, tests). */
  warmRunnerStats(): RunnerPoolStats {
    return this.warm.stats();
  }

  get coordinatorId(): string {
    return this.options.coordinatorId;
  }

  get capacity(): number {
    return this.options.capacity;
  }

  /** What this coordinator reports about itself (heartbeats, GetCoordinatorInfo). */
  load(): CoordinatorLoad {
    return {
      instances: this.liveCount,
      capacity: this.capacity,
      cpuLoad: (os.loadavg()[0] ?? 0) / Math.max(1, os.cpus().length),
      memoryBytes: process.memoryUsage().rss,
      draining: this.draining,
      replicated: this.replicated,
    };
  }

  /** Agents here are replicated to S3 (and can resume on every replicated coordinator). */
  get replicated(): boolean {
    return this.options.replication !== undefined;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** Instances with a process, and starts in progress: what capacity bounds (hibernated ones cost none). */
  get liveCount(): number {
    return this.runs.awake + this.starting.size;
  }

  /** Registered instances that are hibernated. */
  get hibernatedCount(): number {
    return this.liveByAgent.size - this.runs.awake;
  }

  agentDir(agentId: string): string {
    return path.join(this.options.dataDir, "agents", agentId);
  }

  /**
   * Starts an instance. Once `signal` aborts (the caller cancelled, its deadline passed, or it went away) no
   * agent is left running for it: an abort during start kills the agent, and an instance that became ready
   * just as the caller left is stopped; the create then fails with CANCELED.
   */
  async create(params: CreateInstanceParams, signal?: AbortSignal): Promise<AgentInstance> {
    this.assertAccepting(true);
    validateAgentEnv("environment", params.environment);
    validateAgentEnv("secrets", params.secrets);
    // A new agent's id is reserved here; a warm runner, when one serves it, brings its own.
    const agentId = params.agentId || newId("agent");
    assertAgentId(agentId);
    const running = this.liveByAgent.get(agentId);
    if (params.agentId && isWarmRunner(this.options.dataDir, agentId)) {
      throw new ConnectError(`agent id ${agentId} is taken; choose another`, Code.AlreadyExists);
    }
    const asleep = running ? this.instances.get(running) : undefined;
    const waking = asleep && this.waking.get(asleep.instanceId);
    if ((asleep?.status === "hibernated" || waking) && asleep.deploymentId === resolveDeploymentId(params.deploymentId, this.options.registry.name).id) {
      // Resuming an agent whose instance hibernates (also one restored after a restart): that instance, woken,
      // with the environment and secrets given now (when any: a resume without them keeps the old ones).
      const agentEnv = { ...params.environment, ...params.secrets };
      await (waking ?? this.wake(asleep, Object.keys(agentEnv).length > 0 ? agentEnv : undefined));
      this.resumes.add(asleep);
      return asleep;
    }
    if (running || this.starting.has(agentId)) {
      throw new ConnectError(`agent ${agentId} already has a live instance${running ? ` (${running})` : ""}; stop it first`, Code.AlreadyExists);
    }
    this.starting.add(agentId);
    let release: (() => void) | undefined;
    let instance: AgentInstance | undefined;
    try {
      await this.runs.closed(agentId); // the previous instance's final sync and close
      release = await this.admission.acquire(signal);
      throwIfCancelled(signal);
      const deployment = await this.deployments.resolve(params.deploymentId);
      const bundleDir = await this.options.bundles.materialize(deployment, signal);
      if (deployment.runtime === "python") await this.compilePython(bundleDir);
      throwIfCancelled(signal);
      instance = await this.spawn(deployment, bundleDir, agentId, params, signal);
      return instance;
    } finally {
      // A start answered before `ready` (spawnWith) keeps its admission slot until it is over.
      this.early.after(instance?.agentId, () => release?.());
      this.starting.delete(agentId);
    }
  }

  private async compilePython(bundleDir: string): Promise<void> {
    if (!this.compiled.has(bundleDir)) this.compiled.set(bundleDir, precompilePython(this.options.commands, bundleDir));
    await Promise.all(this.compiled.values());
  }

  private async spawn(deployment: DeploymentRecord, bundleDir: string, reservedId: string, params: CreateInstanceParams, signal?: AbortSignal): Promise<AgentInstance> {
    const settings = readDeploymentSettings(bundleDir, this.limits, this.maxima);
    // A new agent with the coordinator's default limits and network: a warm runner, made ahead, is it.
    const pooled = !params.agentId && this.warm.enabled && fitsWarmRunner(this.copyable, bundleDir, this.limits, settings);
    let instance: AgentInstance | undefined;
    try {
      const warm = pooled ? takeWarmRunner(this.warm, this.incarnationDeps.warm, deployment.runtime, bundleDir) : undefined;
      instance = await this.spawnWith(deployment, bundleDir, reservedId, params, settings, warm, signal);
      return instance;
    } finally {
      // Refilled once this start is over, so making the next runner does not slow this one down.
      if (pooled) this.early.after(instance?.agentId, () => this.warm.refill());
    }
  }

  private async spawnWith(
    deployment: DeploymentRecord,
    bundleDir: string,
    reservedId: string,
    params: CreateInstanceParams,
    settings: DeploymentSettings,
    warm: WarmAgent | undefined,
    signal?: AbortSignal,
  ): Promise<AgentInstance> {
    const agentId = warm?.agentId ?? reservedId;
    const instanceId = warm?.instanceId ?? newId("inst");
    const opened = await openIncarnation(this.incarnationDeps, {
      deployment,
      bundleDir,
      agentId,
      instanceId,
      limits: settings.limits,
      network: settings.network,
      warm,
      fresh: !params.agentId,
      signal,
    });
    const { limits } = settings;
    const instance: AgentInstance = new AgentInstance({
      instanceId,
      agentId,
      deploymentId: deployment.deploymentId,
      runtime: deployment.runtime,
      // environment + secrets are not in processEnv: the runner applies them inside the sandbox (init.env).
      agentEnv: { ...params.environment, ...params.secrets },
      limits,
      onBusy: settings.onBusy,
      ...this.instanceHooks(() => instance),
      ...incarnationOf(opened, warm ? { process: warm.process, entry: path.join(warm.bundleDir, deployment.entry) } : undefined),
    });
    this.track(instance);
    this.register(instance, { ...params.environment, ...params.secrets });
    // Answered while the runner loads the entry when its bundle started here before (early-answers.ts). Not
    // with replication: there a create also promises the agent is replicated (IncarnationRuns.run).
    const early = warm !== undefined && this.early.mayAnswer(bundleDir) && !this.replicated;
    const started = this.runs.run(instance, opened, settings, early ? undefined : signal).then(() => {
      this.counts.started++;
      this.early.proved(bundleDir);
    });
    if (!early) {
      await started;
      return instance;
    }
    this.early.answered(agentId, started, (err) => {
      // A stop (DELETE, drain, a create whose callers left) is not the start's failure.
      if (instance.exit?.reason !== "stopped") this.options.logger.warn(`instance failed to start after its create was answered: ${errorMessage(err)}`, { instance_id: instanceId, agent_id: agentId });
    });
    return instance;
  }

  /** What every instance calls back into the manager with (its hibernation, schedules, lease, logger). */
  private instanceHooks(instance: () => AgentInstance) {
    const { replication, logger } = this.options;
    return {
      onIdle: () => {
        this.memoryRelease.schedule(instance(), IDLE_MEMORY_RELEASE_MS);
        this.hibernation.schedule(instance(), instance().hibernateAfterMs);
      },
      onSchedule: (frame: ScheduleFrame) => this.schedules.handle(instance(), frame),
      onRecorded: countRecorded(this.counts),
      logger,
      mayWrite: replication ? () => replication.holds(instance().agentId) : undefined,
      processFactory: this.factories.processFactory,
    };
  }

  /** Starts tracking an instance: it is known by id and agent, and forgotten (after a while) once it ends. */
  private track(instance: AgentInstance): void {
    this.instances.set(instance.instanceId, instance);
    this.liveByAgent.set(instance.agentId, instance.instanceId);
    void instance.ended.then(() => this.onEnded(instance));
  }

  /** Records the instance on disk (instance-registry.ts), so a restarted coordinator gets it back. */
  private register(instance: AgentInstance, agentEnv: Record<string, string>): void {
    try {
      this.registry?.put({ instanceId: instance.instanceId, agentId: instance.agentId, deploymentId: instance.deploymentId, runtime: instance.runtime, agentEnv, createdAt: instance.createdAt });
    } catch (err) {
      this.options.logger.warn(`cannot record the instance on disk; it will not come back after a restart: ${errorMessage(err)}`, { instance_id: instance.instanceId });
    }
  }

  /** What a previous run of this coordinator held comes back hibernated, with the same ids (instance-registry.ts). */
  private restoreRegistered(): void {
    if (!this.registry) return;
    restoreInstances(
      this.registry,
      (agentId) => this.agentDir(agentId),
      this.options.logger,
      (row, marks) => {
        const instance: AgentInstance = new AgentInstance({ ...row, limits: this.limits, ...this.instanceHooks(() => instance), asleep: { lastSeq: marks.lastSeq, createdAt: row.createdAt } });
        this.track(instance);
        this.schedules.armAt(instance, marks.nextDueAt);
      },
    );
  }

  /** The instance ended (stopped, crashed, fenced, or stopped while hibernated). */
  private onEnded(instance: AgentInstance): void {
    const { agentId, instanceId } = instance;
    this.hibernation.cancel(instance);
    this.memoryRelease.cancel(instance);
    this.schedules.cancel(instance);
    try {
      // A coordinator that closes keeps its instances on disk: they come back, hibernated, when it restarts.
      if (!this.closed) this.registry?.delete(instanceId);
    } catch (err) {
      this.options.logger.warn(`cannot remove an ended instance from disk: ${errorMessage(err)}`, { instance_id: instanceId });
    }
    if (this.liveByAgent.get(agentId) === instanceId) this.liveByAgent.delete(agentId);
    // Stopped while hibernated: the disk it kept mounted for a wake goes (volumes end with their instance),
    // once its last process's close is over (that close may be keeping it for a wake right now).
    void Promise.resolve(this.runs.closed(agentId))
      .then(() => this.options.sandboxes.unmountIdleVolume(this.agentDir(agentId)))
      .catch((err: unknown) => this.options.logger.warn(`cannot unmount an ended instance's disk: ${errorMessage(err)}`, { instance_id: instanceId }));
    if (instance.status === "failed") this.counts.failed++;
    else this.counts.terminated++;
    setTimeout(() => this.instances.delete(instanceId), this.options.endedRetentionMs ?? 10 * 60_000).unref();
  }

  /** Wakes a hibernated instance (same id and subscribers, a new process); callers share one wake; resolves when ready. */
  wake(instance: AgentInstance, agentEnv?: Record<string, string>): Promise<void> {
    if (instance.status !== "hibernated") return Promise.resolve();
    let waking = this.waking.get(instance.instanceId);
    if (!waking) {
      waking = this.wakeNow(instance, agentEnv).finally(() => this.waking.delete(instance.instanceId));
      this.waking.set(instance.instanceId, waking);
    }
    return waking;
  }

  private async wakeNow(instance: AgentInstance, agentEnv?: Record<string, string>): Promise<void> {
    this.assertAccepting(true); // at capacity the instance stays hibernated
    const { agentId, instanceId } = instance;
    this.starting.add(agentId);
    let release: (() => void) | undefined;
    try {
      await this.runs.closed(agentId); // the hibernated process's final sync and close
      release = await this.admission.acquire();
      const deployment = await this.deployments.resolve(instance.deploymentId);
      const bundleDir = await this.options.bundles.materialize(deployment);
      if (deployment.runtime === "python") await this.compilePython(bundleDir);
      const settings = readDeploymentSettings(bundleDir, this.limits, this.maxima);
      const opened = await openIncarnation(this.incarnationDeps, { deployment, bundleDir, agentId, instanceId, limits: settings.limits, network: settings.network, fresh: false }).catch(
        (err: unknown) => {
          // Another coordinator holds the agent now (it was resumed there): this instance of it is over.
          if (ConnectError.from(err).code === Code.AlreadyExists) instance.fence(errorMessage(err));
          throw err;
        },
      );
      try {
        instance.wake(incarnationOf(opened), { limits: settings.limits, onBusy: settings.onBusy, ...(agentEnv ? { agentEnv } : {}) });
      } catch (err) {
        // Stopped while it was being woken: nothing runs.
        try {
          await this.options.replication?.release(agentId);
        } finally {
          await this.runs.close(opened);
        }
        throw err;
      }
      this.starting.delete(agentId);
      if (agentEnv) this.register(instance, agentEnv);
      await this.runs.run(instance, opened, settings);
      this.counts.woken++;
    } finally {
      release?.();
      this.starting.delete(agentId);
    }
  }

  /** Sends a message to an instance, waking it first when it hibernates (the message is recorded once it is awake). */
  async send(instanceId: string, content: JsonObject, strategy?: BusyPolicy, signal?: AbortSignal, trace?: TurnTrace): Promise<SentMessage> {
    const instance = this.requireLive(instanceId);
    await this.wake(instance);
    throwIfCancelled(signal); // the sender gave up during the wake: nothing is recorded
    return instance.send(content, strategy, undefined, trace);
  }

  /** Unavailable while draining or closed; with `starts`, ResourceExhausted (429) at capacity. */
  private assertAccepting(starts: boolean): void {
    if (this.closed || this.draining) throw new ConnectError(`coordinator ${this.coordinatorId} is draining`, Code.Unavailable);
    if (starts && this.liveCount >= this.options.capacity) {
      throw new ConnectError(`coordinator ${this.coordinatorId} is at capacity (${this.options.capacity} live instances)`, Code.ResourceExhausted, { "retry-after": "1" });
    }
  }

  /** The instance a create returned already existed (it was woken): a create nobody waits for must not stop it. */
  resumed(instance: AgentInstance): boolean {
    return this.resumes.has(instance);
  }

  /** Live or recently ended instance. */
  get(instanceId: string): AgentInstance | undefined {
    return this.instances.get(instanceId);
  }

  require(instanceId: string): AgentInstance {
    const instance = this.instances.get(instanceId);
    if (!instance) throw new ConnectError(`unknown instance ${instanceId}`, Code.NotFound);
    return instance;
  }

  requireLive(instanceId: string): AgentInstance {
    const instance = this.require(instanceId);
    if (!instance.live) throw new ConnectError(`instance ${instanceId} has ${instance.status}`, Code.NotFound);
    return instance;
  }

  list(filter: { agentId?: string; deploymentId?: string } = {}): AgentInstance[] {
    return [...this.instances.values()].filter((i) => i.live && (!filter.agentId || i.agentId === filter.agentId) && (!filter.deploymentId || i.deploymentId === filter.deploymentId));
  }

  /** `graceMs`: the agent's time for onStop (undefined: its limit's default; 0: none). */
  async stop(instanceId: string, graceMs?: number): Promise<AgentInstance> {
    const instance = this.require(instanceId);
    await instance.stop(graceMs);
    return instance;
  }

  /**
   * Hibernates an idle instance (its deployment's hibernate_after_ms passed): its process ends, its databases
   * close (synced to S3 with replication), the instance stays. False when it was not idle.
   */
  hibernate(instance: AgentInstance): boolean {
    if (this.closed || this.draining || !instance.hibernate()) return false;
    this.counts.hibernated++;
    return true;
  }

  /** Stops the agent's live instance without writing anything more (another coordinator took the agent over). */
  fenceAgent(agentId: string, reason: string): void {
    for (const instance of this.list({ agentId })) instance.fence(reason);
  }

  /** Restores `sourceAgentId` as of `timestamp` into the new agent `targetAgentId` here (ids checked by replication-routes.ts). */
  async forkAgent(params: { sourceAgentId: string; targetAgentId: string; timestamp?: Date }, signal?: AbortSignal): Promise<{ agentId: string; ms: number }> {
    const { replication } = this.options;
    if (!replication) throw replicationNotConfigured(this.coordinatorId);
    this.assertAccepting(false);
    const agentId = params.targetAgentId;
    if (this.liveByAgent.has(agentId) || this.starting.has(agentId) || fs.existsSync(this.agentDir(agentId))) throw new ConnectError(`agent ${agentId} already exists`, Code.AlreadyExists);
    this.starting.add(agentId);
    try {
      const { ms } = await replication.fork({ ...params, targetDir: this.agentDir(agentId), ...(signal ? { signal } : {}) });
      return { agentId, ms };
    } finally {
      this.starting.delete(agentId);
    }
  }

  /** Settles once an early-answered start of the agent is over (early-answers.ts); reads wait for it. */
  startSettled(agentId: string, signal?: AbortSignal): Promise<void> | undefined {
    return this.early.settled(agentId, signal);
  }

  /** withAgentStore for a read of the API: after a start answered before `ready` is over (what onStart wrote is there). */
  async readAgentStore<T>(agentId: string, signal: AbortSignal | undefined, fn: (store: AgentStore) => T): Promise<T> {
    await this.startSettled(agentId, signal);
    return this.withAgentStore(agentId, fn);
  }

  /** Runs `fn` with the agent's store, opening it read-side when no instance is live. */
  withAgentStore<T>(agentId: string, fn: (store: AgentStore) => T): T {
    const liveId = this.liveByAgent.get(agentId);
    const live = liveId ? this.instances.get(liveId) : undefined;
    if (live?.awake) return fn(live.store);
    const dir = this.agentDir(agentId);
    if (!isValidClientId(agentId) || !fs.existsSync(dir)) throw new ConnectError(`unknown agent ${agentId}`, Code.NotFound);
    return AgentStore.using(dir, fn);
  }

  /** Stops taking instances; waits for running turns up to `deadlineMs`, then stops every instance. */
  async drain(deadlineMs: number): Promise<number> {
    this.draining = true;
    const warm = this.warm.close();
    const live = [...this.instances.values()].filter((i) => i.live);
    const deadline = Date.now() + deadlineMs;
    while (live.some((i) => i.live && (i.status === "busy" || i.queuedMessages > 0)) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await Promise.all([...live.map((i) => i.stop()), warm]);
    return live.length;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled(this.waking.values()); // a wake half way must not release after the sandboxes closed
    this.idleCpu.close();
    this.hibernation.close();
    this.memoryRelease.close();
    this.schedules.close();
    await Promise.all([...[...this.instances.values()].map((i) => i.stop()), this.warm.close()]);
    await this.runs.settled();
    this.registry?.close();
  }
}
