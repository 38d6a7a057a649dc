/** `podium coordinator`: a standalone coordinator host serving the internal Connect/gRPC API. */
import path from "node:path";
import { parseArgs } from "node:util";
import { createCoordinator } from "./create-coordinator.js";
import { LocalRegistry } from "../registry/local-registry.js";
import { runUntilSignal } from "../shared/run-until-signal.js";

export async function runCoordinator(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: "string" },
      host: { type: "string" },
      data: { type: "string" },
      registry: { type: "string" },
      capacity: { type: "string" },
      id: { type: "string" },
      advertise: { type: "string" },
    },
  });
  const dataDir = path.resolve(values.data ?? env.PODIUM_DATA_DIR ?? ".podium");
  const clusterSecret = env.PODIUM_CLUSTER_SECRET ?? "";
  const log = (line: string) => process.stderr.write(`[podium coordinator] ${line}\n`);
  if (!clusterSecret) log("PODIUM_CLUSTER_SECRET is not set: any caller can use this coordinator (dev only)");
  const capacity = values.capacity ?? env.PODIUM_CAPACITY;
  const coordinator = createCoordinator({
    dataDir,
    registry: new LocalRegistry({ dir: path.resolve(values.registry ?? env.PODIUM_REGISTRY_DIR ?? path.join(dataDir, "registry")) }),
    clusterSecret,
    agentPath: env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
    ...(values.id ? { coordinatorId: values.id } : {}),
    ...(values.advertise ? { advertiseAddress: values.advertise } : {}),
    ...(capacity ? { capacity: Number(capacity) } : {}),
  });
  const host = values.host ?? env.PODIUM_HOST ?? "127.0.0.1";
  const port = await coordinator.listen(Number(values.port ?? env.PODIUM_PORT ?? 7100), host);
  process.stdout.write(`podium coordinator ${coordinator.id} listening on http://${host}:${port}\n`);
  return runUntilSignal(() => coordinator.close(), log);
}
