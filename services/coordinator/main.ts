/** `podium coordinator`: a standalone coordinator host serving the internal Connect/gRPC API. */
import path from "node:path";
import { parseArgs } from "node:util";
import { createCoordinator, isLoopbackHost } from "./create-coordinator.js";
import { runUntilSignal } from "../shared/run-until-signal.js";
import { parseLogLevel } from "../shared/logger.js";
import { REGISTRY_FLAGS, registryFromFlags } from "../registry/registry-config.js";
import { REPLICATION_FLAGS, replicationFromFlags } from "./replication-config.js";
import { parseLimitSettings } from "./instance-limits.js";
import { parseWarmRunners } from "./runner-pool.js";
import { parseUidRange } from "./sandbox/agent-uids.js";
import { parseEgressAllow } from "./sandbox/agent-network.js";
import { TRACING_FLAGS, tracingFromFlags } from "../tracing/tracing-config.js";

export async function runCoordinator(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: "string" },
      host: { type: "string" },
      data: { type: "string" },
      capacity: { type: "string" },
      "warm-runners": { type: "string" },
      id: { type: "string" },
      advertise: { type: "string" },
      valkey: { type: "string" },
      "valkey-prefix": { type: "string" },
      ...REGISTRY_FLAGS,
      "metrics-port": { type: "string" },
      ...REPLICATION_FLAGS,
      unsandboxed: { type: "boolean" },
      "insecure-no-auth": { type: "boolean" },
      "agent-uids": { type: "string" },
      "agent-network-allow": { type: "string", multiple: true },
      "agent-limit": { type: "string", multiple: true },
      "agent-limit-max": { type: "string", multiple: true },
      "log-level": { type: "string" },
      ...TRACING_FLAGS,
    },
  });
  const logLevel = parseLogLevel(values["log-level"] ?? env.PODIUM_LOG_LEVEL);
  const list = (flag: string[] | undefined, variable: string | undefined) => [...(flag ?? []), ...(variable ? variable.split(",") : [])];
  const uidsText = values["agent-uids"] ?? env.PODIUM_AGENT_UIDS;
  const agentUids = uidsText ? parseUidRange(uidsText) : undefined;
  const networkAllow = list(values["agent-network-allow"], env.PODIUM_AGENT_NETWORK_ALLOW).map((rule) => parseEgressAllow(rule.trim()));
  const limits = parseLimitSettings(list(values["agent-limit"], env.PODIUM_AGENT_LIMITS), "--agent-limit");
  const limitMaxima = parseLimitSettings(list(values["agent-limit-max"], env.PODIUM_AGENT_LIMIT_MAXIMA), "--agent-limit-max");
  const unsandboxed = values.unsandboxed === true || env.PODIUM_UNSANDBOXED === "1";
  const insecureNoAuth = values["insecure-no-auth"] === true;
  const dataDir = path.resolve(values.data ?? env.PODIUM_DATA_DIR ?? ".podium");
  const clusterSecret = env.PODIUM_CLUSTER_SECRET ?? "";
  const log = (line: string) => process.stderr.write(`[podium coordinator] ${line}\n`);
  if (!clusterSecret) log("PODIUM_CLUSTER_SECRET is not set, so every caller can use this coordinator (loopback only, unless --insecure-no-auth)");
  const capacity = values.capacity ?? env.PODIUM_CAPACITY;
  const warmRunners = parseWarmRunners(values["warm-runners"] ?? env.PODIUM_WARM_RUNNERS);
  const valkey = values.valkey ?? env.PODIUM_VALKEY_URL;
  const advertise = values.advertise ?? env.PODIUM_ADVERTISE_ADDRESS;
  const coordinatorId = values.id ?? env.PODIUM_COORDINATOR_ID;
  const host = values.host ?? env.PODIUM_HOST ?? "127.0.0.1";
  if (!clusterSecret && !insecureNoAuth && !isLoopbackHost(host)) {
    throw new Error(`refusing to serve on ${host} without a cluster secret: set PODIUM_CLUSTER_SECRET on every gateway and coordinator (or start with --insecure-no-auth)`);
  }
  if (valkey && !advertise && (host === "0.0.0.0" || host === "::")) {
    throw new Error("with --valkey and a wildcard --host, set --advertise (PODIUM_ADVERTISE_ADDRESS) to a URL gateways can reach");
  }
  const { registry, s3Client } = registryFromFlags(values, env, path.join(dataDir, "registry"));
  const replication = replicationFromFlags(values, env);
  const metricsPortText = values["metrics-port"] ?? env.PODIUM_METRICS_PORT;
  const metricsPort = metricsPortText === undefined || metricsPortText === "" ? undefined : Number(metricsPortText);
  if (metricsPort !== undefined && (!Number.isInteger(metricsPort) || metricsPort < 0 || metricsPort > 65535)) {
    throw new Error(`--metrics-port must be 0..65535, got ${metricsPortText}`);
  }
  const tracing = await tracingFromFlags(values, env, log);
  if (replication) log(`replicating agents to s3://${replication.s3.bucket}/${replication.s3.prefix ?? ""}agents/ (Litestream)`);
  const coordinator = createCoordinator({
    logLevel,
    dataDir,
    registry,
    clusterSecret,
    insecureNoAuth,
    sandbox: unsandboxed ? "none" : "bwrap",
    ...(agentUids ? { agentUids } : {}),
    ...(networkAllow.length > 0 ? { networkAllow } : {}),
    limits,
    limitMaxima,
    agentPath: env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
    ...(coordinatorId ? { coordinatorId } : {}),
    ...(advertise ? { advertiseAddress: advertise } : {}),
    ...(capacity ? { capacity: Number(capacity) } : {}),
    ...(warmRunners !== undefined ? { warmRunners } : {}),
    // An empty prefix is no prefix given: the default (as replication always read it).
    ...(valkey ? { valkey, valkeyKeyPrefix: values["valkey-prefix"] || env.PODIUM_VALKEY_PREFIX || undefined } : {}),
    ...(replication ? { replication } : {}),
    ...(metricsPort !== undefined ? { metricsPort } : {}),
    ...(tracing ? { spanExporter: tracing } : {}),
  });
  const port = await coordinator.listen(Number(values.port ?? env.PODIUM_PORT ?? 7100), host);
  process.stdout.write(`podium coordinator ${coordinator.id} listening on http://${host}:${port}\n`);
  if (coordinator.metricsPort !== undefined) process.stdout.write(`podium coordinator ${coordinator.id} metrics on http://${host}:${coordinator.metricsPort}/metrics\n`);
  return runUntilSignal(async () => {
    await coordinator.close();
    s3Client?.destroy();
    await tracing?.close();
  }, log);
}
