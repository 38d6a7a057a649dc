/**
 * Options in, compiled options inside: `compileCoordinatorOptions` fills every default of a coordinator and
 * validates once, so createCoordinator and what it builds read required fields only.
 */
import os from "node:os";
import type { Redis } from "ioredis";
import { DEFAULT_KEY_PREFIX } from "../cluster/cluster-keys.js";
import type { DeploymentRegistry } from "../registry/deployment-registry.js";
import type { AgentReplicationOptions } from "../replication/agent-replication.js";
import { newId } from "../shared/ids.js";
import { createLogger, type Logger, type LoggerLevel } from "../shared/logger.js";
import type { SpanSink } from "../tracing/tracer.js";
import { DEFAULT_INSTANCE_LIMITS, DEFAULT_LIMIT_MAXIMA, type InstanceLimits } from "./instance-limits.js";
import { DEFAULT_WARM_RUNNERS } from "./runner-pool.js";
import type { RuntimeCommands } from "./runtime-commands.js";
import type { EgressAllowRule } from "./sandbox/agent-network.js";
import { DEFAULT_AGENT_UID_RANGE, type UidRange } from "./sandbox/agent-uids.js";
import type { SandboxMode } from "./sandbox/sandbox.js";
import { startLimitsFor, type StartLimits } from "./start-admission.js";

/** PATH of agent processes when `agentPath` is not given. */
export const DEFAULT_AGENT_PATH = "/usr/local/bin:/usr/bin:/bin";
/** On close(), how long a registered coordinator lets running turns finish before stopping instances. */
export const DEFAULT_DRAIN_DEADLINE_MS = 20_000;
/** Stale local copies of replicated agents (`<agent>.stale-<ms>`) older than this are removed at start-up. */
export const DEFAULT_STALE_RETENTION_MS = 7 * 24 * 3600_000;

/**
 * Replication of every agent to S3 (docs/replication.md). Leases and last-writer records use the
 * coordinator's Valkey (`valkey`) unless `redis` is given; without either there is no single-writer
 * guarantee, which is only safe with one coordinator.
 */
export type CoordinatorReplicationOptions = Omit<AgentReplicationOptions, "coordinatorId" | "onLeaseLost" | "logger" | "keyPrefix"> & {
  /** Stale local copies (`<agent>.stale-<ms>`) older than this are removed at start-up. Default 7 days. */
  staleRetentionMs?: number;
};

export interface CoordinatorOptions {
  dataDir: string;
  registry: DeploymentRegistry;
  coordinatorId?: string;
  /** Where gateways reach this coordinator, as published to discovery (default: the address it listens on). */
  advertiseAddress?: string;
  /** Instances with a process at once (default 32 per core, at least 8). */
  capacity?: number;
  /**
   * Instance starts in flight at once (default 2 per core), waiting for a slot (default 16 per core) and for how
   * long (default 10 s); beyond, creates are refused with RESOURCE_EXHAUSTED + retry-after (429).
   */
  starts?: Partial<StartLimits>;
  /** Limits of an instance whose podium.json asks for none (defaults: instance-limits.ts). */
  limits?: Partial<InstanceLimits>;
  /** The most a deployment's podium.json `limits` may ask for (defaults: instance-limits.ts). */
  limitMaxima?: Partial<InstanceLimits>;
  commands?: Partial<RuntimeCommands>;
  /**
   * Calls must carry this secret (as a bearer token); empty disables the check, which listen() refuses
   * on a non-loopback address unless `insecureNoAuth` is set.
   */
  clusterSecret?: string;
  insecureNoAuth?: boolean;
  /** PATH for agent processes (default /usr/local/bin:/usr/bin:/bin). */
  agentPath?: string;
  /** Sandboxed runners kept warm per runtime for new agents' creates (runner-pool.ts); 0 disables. Default 2. */
  warmRunners?: number;
  /** Per-agent workspace quota, bytes (default: chronicle-options.ts, 1 GiB). */
  workspaceQuotaBytes?: number;
  /**
   * "bwrap" (default): every agent in a bubblewrap sandbox, refusing to start without one; "auto" (podium
   * dev): bubblewrap when it works, a loud warning otherwise; "none" (--unsandboxed): no isolation.
   */
  sandbox?: SandboxMode;
  /** Agents' outer uids when the coordinator runs as root (default 600000000-600999999). */
  agentUids?: UidRange;
  /** Private destinations agents with network "egress" may reach anyway. */
  networkAllow?: EgressAllowRule[];
  /** Whole-tree limits with cgroups and disk quotas with loop mounts, where possible (default true). */
  cgroups?: boolean;
  diskVolumes?: boolean;
  logger?: Logger;
  /** Level of the logger made when `logger` is not given (default info). */
  logLevel?: LoggerLevel;
  /** Valkey connection or URL: when set, the coordinator registers for service discovery once it listens. */
  valkey?: Redis | string;
  /** Valkey key prefix (default "podium:"). */
  valkeyKeyPrefix?: string;
  /** On close(), how long running turns may finish before instances are stopped (registered coordinators). Default 20 s. */
  drainDeadlineMs?: number;
  /** Replicate agents to S3 with Litestream (resume anywhere, point-in-time forks). Off by default. */
  replication?: CoordinatorReplicationOptions;
  /**
   * Serve Prometheus metrics over HTTP/1.1 on this port (0: a free one) at GET /metrics, on the same host
   * as the API (whose port speaks h2c only). With a cluster secret, scrapes must send it as a bearer token.
   */
  metricsPort?: number;
  /**
   * The OTLP batcher its spans also go to (tracing.ts): then every SendMessage is traced. Without one only turns
   * under a caller's sampled traceparent are recorded. Either way they are kept in memory (span-buffer.ts) for GetTrace.
   */
  spanExporter?: SpanSink;
}

export type CompiledReplicationOptions = Omit<CoordinatorReplicationOptions, "staleRetentionMs"> & { staleRetentionMs: number };

/** Every default filled; `undefined` only where absence means "off". */
export interface CompiledCoordinatorOptions {
  dataDir: string;
  registry: DeploymentRegistry;
  coordinatorId: string;
  /** "" until listen() knows its address. */
  advertiseAddress: string;
  capacity: number;
  starts: StartLimits;
  limits: InstanceLimits;
  limitMaxima: InstanceLimits;
  /** Overrides only: runtime-commands.ts resolves the rest against PATH at start-up. */
  commands: Partial<RuntimeCommands>;
  /** "" when calls are not authenticated. */
  clusterSecret: string;
  insecureNoAuth: boolean;
  agentPath: string;
  warmRunners: number;
  /** Undefined: the chronicle's default (chronicle-options.ts). */
  workspaceQuotaBytes: number | undefined;
  sandbox: SandboxMode;
  agentUids: UidRange;
  networkAllow: EgressAllowRule[];
  cgroups: boolean;
  diskVolumes: boolean;
  logger: Logger;
  valkey: Redis | string | undefined;
  valkeyKeyPrefix: string;
  drainDeadlineMs: number;
  replication: CompiledReplicationOptions | undefined;
  metricsPort: number | undefined;
  spanExporter: SpanSink | undefined;
}

const SANDBOX_MODES: readonly SandboxMode[] = ["bwrap", "auto", "none"];

/** Fills defaults and rejects values that would fail later (or silently misbehave) with one clear error. */
export function compileCoordinatorOptions(options: CoordinatorOptions): CompiledCoordinatorOptions {
  if (typeof options.dataDir !== "string" || options.dataDir === "") throw invalid("dataDir", options.dataDir, "a directory path");
  const coordinatorId = options.coordinatorId ?? newId("coord");
  if (coordinatorId === "") throw invalid("coordinatorId", coordinatorId, "a non-empty id");
  const sandbox = options.sandbox ?? "bwrap";
  if (!SANDBOX_MODES.includes(sandbox)) throw invalid("sandbox", sandbox, `one of ${SANDBOX_MODES.join(", ")}`);
  const agentUids = options.agentUids ?? DEFAULT_AGENT_UID_RANGE;
  if (!Number.isSafeInteger(agentUids.first) || !Number.isSafeInteger(agentUids.last) || agentUids.first <= 0 || agentUids.last < agentUids.first) {
    throw invalid("agentUids", `${agentUids.first}-${agentUids.last}`, "a range first-last of positive uids");
  }
  const starts = startLimitsFor(os.availableParallelism(), options.starts);
  positiveInteger("starts.concurrency", starts.concurrency);
  nonNegativeInteger("starts.maxWaiting", starts.maxWaiting);
  nonNegativeInteger("starts.maxWaitMs", starts.maxWaitMs);
  const limits = { ...DEFAULT_INSTANCE_LIMITS, ...options.limits };
  const limitMaxima = { ...DEFAULT_LIMIT_MAXIMA, ...options.limitMaxima };
  for (const [key, value] of Object.entries(limits)) nonNegative(`limits.${key}`, value);
  for (const [key, value] of Object.entries(limitMaxima)) nonNegative(`limitMaxima.${key}`, value);
  const logger = options.logger ?? createLogger({ ...(options.logLevel ? { level: options.logLevel } : {}), fields: { service: "coordinator", coordinator_id: coordinatorId } });
  return {
    dataDir: options.dataDir,
    registry: options.registry,
    coordinatorId,
    advertiseAddress: options.advertiseAddress ?? "",
    capacity: nonNegativeInteger("capacity", options.capacity ?? Math.max(8, os.cpus().length * 32)),
    starts,
    limits,
    limitMaxima,
    commands: options.commands ?? {},
    clusterSecret: options.clusterSecret ?? "",
    insecureNoAuth: options.insecureNoAuth ?? false,
    agentPath: options.agentPath ?? DEFAULT_AGENT_PATH,
    warmRunners: nonNegativeInteger("warmRunners", options.warmRunners ?? DEFAULT_WARM_RUNNERS),
    workspaceQuotaBytes: options.workspaceQuotaBytes === undefined ? undefined : positiveInteger("workspaceQuotaBytes", options.workspaceQuotaBytes),
    sandbox,
    agentUids,
    networkAllow: options.networkAllow ?? [],
    cgroups: options.cgroups ?? true,
    diskVolumes: options.diskVolumes ?? true,
    logger,
    valkey: options.valkey,
    valkeyKeyPrefix: options.valkeyKeyPrefix ?? DEFAULT_KEY_PREFIX,
    drainDeadlineMs: nonNegativeInteger("drainDeadlineMs", options.drainDeadlineMs ?? DEFAULT_DRAIN_DEADLINE_MS),
    replication: options.replication && {
      ...options.replication,
      staleRetentionMs: nonNegativeInteger("replication.staleRetentionMs", options.replication.staleRetentionMs ?? DEFAULT_STALE_RETENTION_MS),
    },
    metricsPort: options.metricsPort === undefined ? undefined : port("metricsPort", options.metricsPort),
    spanExporter: options.spanExporter,
  };
}

function invalid(name: string, value: unknown, expected: string): RangeError {
  return new RangeError(`invalid coordinator option ${name}: expected ${expected}, got ${JSON.stringify(value) ?? String(value)}`);
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw invalid(name, value, "a positive integer");
  return value;
}

function nonNegativeInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) throw invalid(name, value, "an integer >= 0");
  return value;
}

function nonNegative(name: string, value: number): number {
  if (typeof value !== "number" || Number.isNaN(value) || value < 0) throw invalid(name, value, "a number >= 0");
  return value;
}

function port(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > 65535) throw invalid(name, value, "a port 0..65535");
  return value;
}
