/** `podium gateway`: a standalone gateway in front of one or more coordinators. */
import { parseArgs } from "node:util";
import type { Interceptor } from "@connectrpc/connect";
import { StaticCoordinatorDirectory, type CoordinatorDirectory } from "./coordinator-directory.js";
import { ValkeyCoordinatorDirectory } from "../cluster/valkey-directory.js";
import { grpcCoordinatorConnector } from "../cluster/grpc-coordinator-connector.js";
import { createLogger, parseLogLevel } from "../shared/logger.js";
import { createGateway } from "./create-gateway.js";
import { publicExtensions } from "./public-extensions.js";
import { corsOriginsFrom } from "./cors-policy.js";
import { runUntilSignal } from "../shared/run-until-signal.js";
import { REGISTRY_FLAGS, registryFromFlags } from "../registry/registry-config.js";
import { TRACING_FLAGS, tracingFromFlags } from "../tracing/tracing-config.js";

export function clusterSecretInterceptor(secret: string): Interceptor {
  return (next) => (req) => {
    if (secret) req.header.set("authorization", `Bearer ${secret}`);
    return next(req);
  };
}

export async function runGateway(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: "string" },
      host: { type: "string" },
      coordinator: { type: "string", multiple: true },
      "insecure-no-auth": { type: "boolean" },
      valkey: { type: "string" },
      "valkey-prefix": { type: "string" },
      "cors-origin": { type: "string", multiple: true },
      ...REGISTRY_FLAGS,
      ...TRACING_FLAGS,
      "log-level": { type: "string" },
    },
  });
  const log = (line: string) => process.stderr.write(`[podium gateway] ${line}\n`);
  const apiKeys = (env.PODIUM_API_KEY ?? "")
    .split(",")
    .map((k) => k.trim())
    .filter(Boolean);
  if (apiKeys.length === 0 && !values["insecure-no-auth"]) throw new Error("PODIUM_API_KEY is required (or pass --insecure-no-auth)");
  const secret = env.PODIUM_CLUSTER_SECRET ?? "";
  const valkey = values.valkey ?? env.PODIUM_VALKEY_URL;
  const logger = createLogger({ level: parseLogLevel(values["log-level"] ?? env.PODIUM_LOG_LEVEL), fields: { service: "gateway" } });
  const directory: CoordinatorDirectory = valkey
    ? new ValkeyCoordinatorDirectory({
        redis: valkey,
        keyPrefix: values["valkey-prefix"] ?? env.PODIUM_VALKEY_PREFIX,
        connect: grpcCoordinatorConnector({ interceptors: [clusterSecretInterceptor(secret)], logger }),
        logger,
      })
    : await staticDirectory(
        values.coordinator ?? (env.PODIUM_COORDINATORS ?? "").split(",").filter(Boolean),
        grpcCoordinatorConnector({ interceptors: [clusterSecretInterceptor(secret)], logger }),
        log,
      );
  if (directory instanceof ValkeyCoordinatorDirectory) await directory.ready();
  const { registry, s3Client } = registryFromFlags(values, env, ".podium/registry");
  const corsOrigins = corsOriginsFrom(values["cors-origin"], env.PODIUM_CORS_ORIGINS);
  const tracing = await tracingFromFlags(values, env, log);
  const gateway = createGateway({ directory, registry, apiKeys, logger, corsOrigins, extensions: publicExtensions, ...(tracing ? { spanExporter: tracing } : {}) });
  const host = values.host ?? env.PODIUM_HOST ?? "127.0.0.1";
  const port = await gateway.listen(Number(values.port ?? env.PODIUM_PORT ?? 7070), host);
  process.stdout.write(`podium gateway listening on http://${host}:${port}\n`);
  return runUntilSignal(async () => {
    await gateway.close();
    await directory.close();
    s3Client?.destroy();
    await tracing?.close();
  }, log);
}

/** The fixed-list directory (no Valkey): coordinators from --coordinator / PODIUM_COORDINATORS, each behind its circuit breaker. */
async function staticDirectory(addresses: string[], connect: ReturnType<typeof grpcCoordinatorConnector>, log: (line: string) => void): Promise<StaticCoordinatorDirectory> {
  if (addresses.length === 0) throw new Error("set --valkey (PODIUM_VALKEY_URL) or at least one --coordinator URL");
  const clients = addresses.map((address) => connect({ coordinatorId: address, address }));
  // Coordinators report their own ids; key the directory by them so recorded placements match.
  const named = await Promise.all(
    clients.map(async (c) => {
      const { info } = await c.control.getCoordinatorInfo({}, { timeoutMs: 5000 });
      return info?.coordinatorId ? { ...c, id: info.coordinatorId } : c;
    }),
  ).catch((err: unknown) => {
    log(`could not reach every coordinator at start-up: ${err instanceof Error ? err.message : String(err)}`);
    return clients;
  });
  return new StaticCoordinatorDirectory(named);
}
