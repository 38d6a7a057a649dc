/** `podium gateway`: a standalone gateway in front of one or more coordinators. */
import path from "node:path";
import { parseArgs } from "node:util";
import type { Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { coordinatorClients, StaticCoordinatorDirectory } from "./coordinator-directory.js";
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
    },
  });
  const log = (line: string) => process.stderr.write(`[podium gateway] ${line}\n`);
  const apiKeys = (env.PODIUM_API_KEY ?? "").split(",").map((k) => k.trim()).filter(Boolean);
  if (apiKeys.length === 0 && !values["insecure-no-auth"]) throw new Error("PODIUM_API_KEY is required (or pass --insecure-no-auth)");
  const addresses = values.coordinator ?? (env.PODIUM_COORDINATORS ?? "").split(",").filter(Boolean);
  if (addresses.length === 0) throw new Error("at least one --coordinator URL is required");
  const secret = env.PODIUM_CLUSTER_SECRET ?? "";
  const clients = addresses.map((address) =>
    coordinatorClients(address, createGrpcTransport({ baseUrl: address, interceptors: [clusterSecretInterceptor(secret)] })),
  );
  const directory = new StaticCoordinatorDirectory(clients);
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
  const gateway = createGateway({
    directory: named === clients ? directory : new StaticCoordinatorDirectory(named),
    registry: new LocalRegistry({ dir: path.resolve(values.registry ?? env.PODIUM_REGISTRY_DIR ?? ".podium/registry") }),
    apiKeys,
  });
  const host = values.host ?? env.PODIUM_HOST ?? "127.0.0.1";
  const port = await gateway.listen(Number(values.port ?? env.PODIUM_PORT ?? 7070), host);
  process.stdout.write(`podium gateway listening on http://${host}:${port}\n`);
  return runUntilSignal(() => gateway.close(), log);
}
