/** `podium dev`: reads flags and environment, starts the embedded server, runs until a signal. */
import path from "node:path";
import { parseArgs } from "node:util";
import { createDevServer } from "./create-dev-server.js";
import { corsOriginsFrom } from "../gateway/cors-policy.js";
import { runUntilSignal } from "../shared/run-until-signal.js";
import { createLogger, parseLogLevel } from "../shared/logger.js";
import { REPLICATION_FLAGS, replicationFromFlags } from "../coordinator/replication-config.js";
import { parseWarmRunners } from "../coordinator/runner-pool.js";
import { TRACING_FLAGS, tracingFromFlags } from "../tracing/tracing-config.js";

export async function runDev(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: "string" },
      host: { type: "string" },
      data: { type: "string" },
      agents: { type: "string" },
      "log-level": { type: "string" },
      "warm-runners": { type: "string" },
      "cors-origin": { type: "string", multiple: true },
      ...REPLICATION_FLAGS,
      ...TRACING_FLAGS,
    },
  });
  const port = Number(values.port ?? env.PODIUM_PORT ?? 7070);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be 0..65535, got ${values.port}`);
  const host = values.host ?? env.PODIUM_HOST ?? "127.0.0.1";
  const apiKeys = (env.PODIUM_API_KEY ?? "")
    .split(",")
    .map((k) => k.trim())
    .filter(Boolean);
  const log = (line: string) => process.stderr.write(`[podium] ${line}\n`);
  if (apiKeys.length === 0) {
    if (host !== "127.0.0.1" && host !== "localhost" && host !== "::1") {
      throw new Error("PODIUM_API_KEY must be set when listening on a non-loopback address");
    }
    log("PODIUM_API_KEY is not set: accepting unauthenticated requests on loopback (dev only)");
  }
  const level = parseLogLevel(values["log-level"] ?? env.PODIUM_LOG_LEVEL);
  const replication = replicationFromFlags(values, env);
  const warmRunners = parseWarmRunners(values["warm-runners"] ?? env.PODIUM_WARM_RUNNERS);
  const tracing = await tracingFromFlags(values, env, log);
  const server = await createDevServer({
    logger: createLogger({ level, fields: { service: "podium-dev" } }),
    port,
    host,
    dataDir: path.resolve(values.data ?? env.PODIUM_DATA_DIR ?? ".podium"),
    ...(values.agents ? { agentsDir: path.resolve(values.agents) } : {}),
    apiKeys,
    ...(tracing ? { tracing } : {}),
    gateway: { corsOrigins: corsOriginsFrom(values["cors-origin"], env.PODIUM_CORS_ORIGINS) },
    coordinator: { agentPath: env.PATH ?? "/usr/local/bin:/usr/bin:/bin", ...(replication ? { replication } : {}), ...(warmRunners !== undefined ? { warmRunners } : {}) },
  });
  for (const d of server.deployments) log(`deployed ${d.deploymentId} (${d.runtime}, ${d.digest.slice(0, 19)})`);
  process.stdout.write(`podium dev listening on ${server.url}\n`);
  process.stdout.write(`web console: ${server.url}/console/\n`);
  return runUntilSignal(async () => {
    await server.close();
    await tracing?.close();
  }, log);
}
