/**
 * A coordinator: runs agent instances and serves InstanceService, FileService and
 * CoordinatorService. `routes` can be mounted in-process (dev mode) or served on a port.
 */
import path from "node:path";
import type { ConnectRouter } from "@connectrpc/connect";
import { CoordinatorRegistration } from "../cluster/coordinator-registration.js";
import { coordinatorRoutes } from "./coordinator-routes.js";
import { SpanBuffer, spanTracer } from "../tracing/span-buffer.js";
import { InstanceManager } from "./instance-manager.js";
import { removeOrphanWatchDirs } from "./chronicle/workspace-watcher.js";
import { resolveRuntimeCommands, type RuntimeCommands } from "./runtime-commands.js";
import { createChronicleAccess, type ChronicleAccess } from "./chronicle-access.js";
import { AgentSandboxes } from "./sandbox/agent-sandboxes.js";
import { NOBODY, unreachableBy } from "./sandbox/reachable.js";
import { findSystemTool } from "./sandbox/system-tools.js";
import { BundleCache } from "../registry/bundle-cache.js";
import { ApiKeyAuth, OPEN_SERVICES } from "../shared/api-key-auth.js";
import { createConnectHandler } from "../shared/connect-handler.js";
import { HealthStatusRegistry, ServingStatus } from "../shared/grpc-health.js";
import type { Logger } from "../shared/logger.js";
import { OnePortServer } from "../shared/one-port-server.js";
import { InstanceService } from "../../gen/podium/v1/instance_service_pb.js";
import { CoordinatorService } from "../../gen/podium/v1/coordinator_service_pb.js";
import { FileService } from "../../gen/podium/v1/file_service_pb.js";
import { PODIUM_VERSION } from "../shared/version.js";
import { ReplicationService } from "../../gen/podium/v1/replication_service_pb.js";
import { createAgentReplication, type AgentReplication } from "../replication/agent-replication.js";
import { removeStaleCopies } from "../replication/stale-copies.js";
import { replicationRoutes } from "./replication-routes.js";
import { coordinatorMetrics } from "./coordinator-metrics.js";
import type { MetricsRegistry } from "../shared/metrics.js";
import { startMetricsServer, type MetricsServer } from "../shared/metrics-server.js";
import { compileCoordinatorOptions, type CompiledCoordinatorOptions, type CompiledReplicationOptions, type CoordinatorOptions } from "./coordinator-options.js";

export type { CoordinatorOptions, CoordinatorReplicationOptions } from "./coordinator-options.js";

export interface Coordinator {
  readonly id: string;
  readonly manager: InstanceManager;
  readonly routes: (router: ConnectRouter) => void;
  readonly health: HealthStatusRegistry;
  readonly chronicles: ChronicleAccess;
  /** Present when replication is configured. */
  readonly replication: AgentReplication | undefined;
  readonly metrics: MetricsRegistry;
  /** The bound metrics port, once listening with `metricsPort`. */
  readonly metricsPort: number | undefined;
  /** Serves the Connect/gRPC API on one port; resolves with the bound port. */
  listen(port: number, host?: string): Promise<number>;
  close(): Promise<void>;
}

export function createCoordinator(coordinatorOptions: CoordinatorOptions): Coordinator {
  const options = compileCoordinatorOptions(coordinatorOptions);
  const id = options.coordinatorId;
  const logger = options.logger;
  const startedAt = Date.now();
  // Change-tracking sentinels of coordinators killed on this host (kill -9 never ran their close()).
  const orphanWatchDirs = removeOrphanWatchDirs();
  if (orphanWatchDirs > 0) logger.info("removed workspace watch directories of coordinators that are gone", { count: orphanWatchDirs });

  // Leases exist only for agents the manager started, so `manager` is there by the time one is lost.
  const replication = options.replication
    ? startReplication(options.replication, options, id, logger, {
        onLeaseLost: (agentId, reason) => manager.fenceAgent(agentId, reason),
        unmountIdle: (agentDir) => sandboxes.unmountIdleVolume(agentDir),
      })
    : undefined;
  const commands = agentReachableCommands(options.commands, process.getuid?.() === 0 && options.sandbox !== "none", logger);
  const sandboxes = new AgentSandboxes({
    runtimePaths: [commands.bun, commands.tsRunner, commands.pyRunner, commands.python],
    coordinatorId: id,
    dataDir: options.dataDir,
    mode: options.sandbox,
    uidRange: options.agentUids,
    networkAllow: options.networkAllow,
    cgroups: options.cgroups,
    volumes: options.diskVolumes,
    logger,
  });
  logger.info(`agents are isolated by: ${sandboxes.describe()}`);
  const chronicles = createChronicleAccess({
    quotaBytes: options.workspaceQuotaBytes,
    mountWorkspace: (agentDir, signal) => sandboxes.mountWorkspace(agentDir, signal),
  });
  const manager = new InstanceManager({
    coordinatorId: id,
    dataDir: options.dataDir,
    registry: options.registry,
    bundles: new BundleCache({ dir: path.join(options.dataDir, "bundles"), registry: options.registry }),
    commands,
    limits: options.limits,
    limitMaxima: options.limitMaxima,
    logger,
    agentPath: options.agentPath,
    capacity: options.capacity,
    starts: options.starts,
    warmRunners: options.warmRunners,
    workspaces: chronicles.factory,
    sandboxes,
    ...(replication ? { replication } : {}),
  });
  chronicles.attach(manager);
  let advertise = options.advertiseAddress;
  const spans = new SpanBuffer();
  // Ends the gateways' message streams when the server closes (their next message opens a new stream, which fails over).
  const closing = new AbortController();
  const routes = coordinatorRoutes({
    manager,
    get address() {
      return advertise;
    },
    startedAt,
    version: PODIUM_VERSION,
    files: chronicles,
    tracer: spanTracer("podium-coordinator", spans, options.spanExporter),
    spans,
    closing: closing.signal,
  });
  const replicationRouter = replicationRoutes({ manager, replication });
  const metrics = coordinatorMetrics(manager, replication);
  let registration: CoordinatorRegistration | undefined;
  const labels = { coordinator_id: id };
  metrics.register(
    { name: "podium_instance_starts", help: "Instance starts running now (bounded: see starts.concurrency).", type: "gauge", collect: () => [{ labels, value: manager.admission.active }] },
    { name: "podium_instance_starts_waiting", help: "Creates waiting for a start slot.", type: "gauge", collect: () => [{ labels, value: manager.admission.queued }] },
    {
      name: "podium_instance_starts_refused_total",
      help: "Creates refused with RESOURCE_EXHAUSTED (429 + Retry-After) because too many starts were in flight or waiting.",
      type: "counter",
      collect: () => [{ labels, value: manager.admission.counts.refused }],
    },
    {
      name: "podium_heartbeat_lag_max_seconds",
      help: "Largest delay of a heartbeat behind its schedule since start (a busy event loop); heartbeats expire after the TTL (3 s).",
      type: "gauge",
      collect: () => (registration ? [{ labels, value: registration.heartbeatLag.maxMs / 1000 }] : []),
    },
  );
  let metricsServer: MetricsServer | undefined;
  const health = new HealthStatusRegistry({ "": ServingStatus.SERVING });
  let server: OnePortServer | undefined;
  return {
    id,
    manager,
    routes: (router) => {
      routes(router);
      replicationRouter(router);
    },
    health,
    chronicles,
    replication,
    metrics,
    get metricsPort() {
      return metricsServer?.port;
    },
    async listen(port, host = "127.0.0.1") {
      if (!options.clusterSecret && !options.insecureNoAuth && !isLoopbackHost(host)) {
        throw new Error(`refusing to serve coordinator ${id} on ${host} without a cluster secret: set PODIUM_CLUSTER_SECRET (or start with --insecure-no-auth)`);
      }
      const auth = new ApiKeyAuth(options.clusterSecret ? [options.clusterSecret] : []);
      server = new OnePortServer({
        // Gateways reach coordinators over h2c only (gRPC / Connect).
        http2Only: true,
        handler: createConnectHandler({
          routes: [routes, replicationRouter],
          services: [InstanceService, FileService, CoordinatorService, ReplicationService],
          interceptors: [auth.interceptor(OPEN_SERVICES)],
          health,
        }),
      });
      const bound = await server.listen(port, host);
      if (options.metricsPort !== undefined && !metricsServer) {
        metricsServer = await startMetricsServer({ registry: metrics, port: options.metricsPort, host, bearer: options.clusterSecret });
        logger.info(`metrics on http://${host}:${metricsServer.port}/metrics`);
      }
      if (!advertise) advertise = `http://${host}:${bound.port}`;
      logger.info(`coordinator listening on http://${host}:${bound.port}`);
      if (options.valkey && !registration) {
        registration = new CoordinatorRegistration({
          redis: options.valkey,
          coordinatorId: id,
          address: () => advertise,
          info: () => manager.load(),
          liveInstances: () => manager.list().map((i) => ({ instanceId: i.instanceId, agentId: i.agentId })),
          startedAt,
          version: PODIUM_VERSION,
          logger,
          keyPrefix: options.valkeyKeyPrefix,
        });
        await registration.start();
      }
      return bound.port;
    },
    async close() {
      health.setStatus("", ServingStatus.NOT_SERVING);
      if (registration) {
        const drained = manager.drain(options.drainDeadlineMs);
        await registration.heartbeatNow(); // gateways stop placing here now, not at the next tick
        await drained;
      }
      await manager.close(); // every agent's final sync to S3 happens here
      await sandboxes.close();
      await replication?.close();
      await registration?.stop(); // after the instances ended: deletes the key, publishes leave
      chronicles.close();
      await metricsServer?.close();
      closing.abort();
      await server?.close();
      health.close();
    },
  };
}

function startReplication(
  settings: CompiledReplicationOptions,
  options: CompiledCoordinatorOptions,
  coordinatorId: string,
  logger: Logger,
  hooks: { onLeaseLost: (agentId: string, reason: string) => void; unmountIdle: (agentDir: string) => Promise<void> },
): AgentReplication {
  const { staleRetentionMs, ...replication } = settings;
  const removed = removeStaleCopies(path.join(options.dataDir, "agents"), staleRetentionMs);
  if (removed > 0) logger.info("removed stale local copies of agents", { count: removed });
  const redis = replication.redis ?? options.valkey;
  if (!redis) logger.warn("replication without Valkey: no single-writer lease; run only one coordinator against this bucket");
  return createAgentReplication({
    configDir: path.join(options.dataDir, "replication"),
    ...replication,
    ...(redis ? { redis } : {}),
    keyPrefix: options.valkeyKeyPrefix,
    coordinatorId,
    logger: logger.child({ component: "replication" }),
    onLeaseLost: (agentId, reason) => {
      logger.warn("lost an agent's lease; stopping it here", { agent_id: agentId, reason });
      hooks.onLeaseLost(agentId, reason);
    },
    unmountIdle: hooks.unmountIdle,
  });
}

export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * The runtimes to run agents with. Agents of a root coordinator run as unprivileged uids, which must reach
 * their interpreter: a Python under a private home (pyenv in /root) is replaced by the system's when that
 * one is reachable.
 */
function agentReachableCommands(overrides: Partial<RuntimeCommands>, unprivileged: boolean, logger: Logger): RuntimeCommands {
  const system = "/usr/bin/python3";
  const systemReachable = () => !unreachableBy(system, NOBODY, NOBODY);
  // `python3` on PATH where agents cannot reach it (a pyenv shim under /root): its interpreter would be
  // unreachable too, so the system one is taken without asking the shim (~0.3 s of start-up).
  const candidate = unprivileged && !overrides.python ? findSystemTool("python3", (process.env.PATH ?? "").split(":").filter(Boolean)) : undefined;
  if (candidate && candidate !== system && unreachableBy(candidate, NOBODY, NOBODY) && systemReachable()) {
    logger.info(`agents cannot reach ${candidate}; Python agents use ${system}`);
    return resolveRuntimeCommands({ ...overrides, python: system, pythonPrefix: "/usr" });
  }
  const commands = resolveRuntimeCommands(overrides);
  if (!unprivileged || !unreachableBy(commands.python, NOBODY, NOBODY)) return commands;
  if (commands.python !== system && systemReachable()) {
    logger.info(`agents cannot reach ${commands.python}; Python agents use ${system}`);
    return { ...commands, python: system, pythonPrefix: "/usr" };
  }
  return commands;
}
