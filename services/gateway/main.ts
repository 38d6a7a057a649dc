/** `podium gateway`: a standalone gateway in front of one or more coordinators. */
import path from "node:path";
import { parseArgs } from "node:util";
import type { Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { coordinatorClients, StaticCoordinatorDirectory, type CoordinatorDirectory } from "./coordinator-directory.js";
import { ValkeyCoordinatorDirectory } from "../cluster/valkey-directory.js";
import { grpcCoordinatorConnector } from "../cluster/grpc-coordinator-connector.js";
import { S3Registry } from "../registry/s3-registry.js";
import { createS3Client } from "../registry/s3-client.js";
import { createLogger } from "../shared/logger.js";
import { createGateway } from "./create-gateway.js";
import { LocalRegistry } from "../registry/local-registry.js";
import { runUntilSignal } from "../shared/run-until-signal.js";

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
      registry: { type: "string" },
      coordinator: { type: "string", multiple: true },
      "insecure-no-auth": { type: "boolean" },
      valkey: { type: "string" },
      "valkey-prefix": { type: "string" },
      "s3-bucket": { type: "string" },
      "s3-endpoint": { type: "string" },
      "s3-region": { type: "string" },
      "s3-prefix": { type: "string" },
    },
  });
  const log = (line: string) => process.stderr.write(`[podium gateway] ${line}\n`);
  const apiKeys = (env.PODIUM_API_KEY ?? "").split(",").map((k) => k.trim()).filter(Boolean);
  if (apiKeys.length === 0 && !values["insecure-no-auth"]) throw new Error("PODIUM_API_KEY is required (or pass --insecure-no-auth)");
  const secret = env.PODIUM_CLUSTER_SECRET ?? "";
  const valkey = values.valkey ?? env.PODIUM_VALKEY_URL;
  const directory: CoordinatorDirectory = valkey
    ? new ValkeyCoordinatorDirectory({
        redis: valkey,
        keyPrefix: values["valkey-prefix"] ?? env.PODIUM_VALKEY_PREFIX,
        connect: grpcCoordinatorConnector({ interceptors: [clusterSecretInterceptor(secret)] }),
        logger: createLogger({ fields: { service: "gateway" } }),
      })
    : await staticDirectory(values.coordinator ?? (env.PODIUM_COORDINATORS ?? "").split(",").filter(Boolean), secret, log);
  if (directory instanceof ValkeyCoordinatorDirectory) await directory.ready();
  const s3Bucket = values["s3-bucket"] ?? env.PODIUM_S3_BUCKET;
  const s3Client = s3Bucket
    ? createS3Client({ endpoint: values["s3-endpoint"] ?? env.PODIUM_S3_ENDPOINT, region: values["s3-region"] ?? env.PODIUM_S3_REGION ?? env.AWS_REGION })
    : undefined;
  const registry = s3Client && s3Bucket
    ? new S3Registry({ client: s3Client, bucket: s3Bucket, prefix: values["s3-prefix"] ?? env.PODIUM_S3_PREFIX })
    : new LocalRegistry({ dir: path.resolve(values.registry ?? env.PODIUM_REGISTRY_DIR ?? ".podium/registry") });
  const gateway = createGateway({ directory, registry, apiKeys });
  const host = values.host ?? env.PODIUM_HOST ?? "127.0.0.1";
  const port = await gateway.listen(Number(values.port ?? env.PODIUM_PORT ?? 7070), host);
  process.stdout.write(`podium gateway listening on http://${host}:${port}\n`);
  return runUntilSignal(async () => {
    await gateway.close();
    await directory.close();
    s3Client?.destroy();
  }, log);
}

/** The fixed-list directory (no Valkey): coordinators from --coordinator / PODIUM_COORDINATORS. */
async function staticDirectory(addresses: string[], secret: string, log: (line: string) => void): Promise<StaticCoordinatorDirectory> {
  if (addresses.length === 0) throw new Error("set --valkey (PODIUM_VALKEY_URL) or at least one --coordinator URL");
  const clients = addresses.map((address) =>
    coordinatorClients(address, createGrpcTransport({ baseUrl: address, interceptors: [clusterSecretInterceptor(secret)] })),
  );
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
