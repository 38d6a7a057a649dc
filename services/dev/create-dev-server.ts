/**
 * Embedded dev mode: gateway + coordinator + local registry + SQLite in one process, no external
 * services. The gateway still reaches the coordinator only through its Connect API (in-process
 * transport), exactly as it does across hosts.
 */
import fs from "node:fs";
import path from "node:path";
import { createInProcessTransport } from "../shared/in-process-transport.js";
import { LOOPBACK_ORIGINS } from "../gateway/cors-policy.js";
import { createCoordinator, type Coordinator, type CoordinatorOptions } from "../coordinator/create-coordinator.js";
import { coordinatorClients, StaticCoordinatorDirectory } from "../gateway/coordinator-directory.js";
import { createGateway, type Gateway, type GatewayOptions } from "../gateway/create-gateway.js";
import { publicExtensions } from "../gateway/public-extensions.js";
import { LocalRegistry } from "../registry/local-registry.js";
import { packBundle } from "../registry/bundle-archive.js";
import { MANIFEST_FILE } from "../registry/bundle-manifest.js";
import type { DeploymentRecord } from "../registry/deployment-registry.js";
import { createLogger, type Logger } from "../shared/logger.js";
import type { Tracing } from "../tracing/tracing.js";

export interface DevServerOptions {
  /** 0 picks a free port. Default 7070. */
  port?: number;
  host?: string;
  /** Where registry, bundles and agent data live. */
  dataDir: string;
  /** Deploys every bundle in this directory's subfolders at start-up. */
  agentsDir?: string;
  apiKeys?: string[];
  logger?: Logger;
  /**
   * Records spans of the gateway (service.name podium-gateway), the coordinator (podium-coordinator) and the
   * agents' turns (podium-agent) into this; the caller owns and closes it. Default: none recorded.
   */
  tracing?: Pick<Tracing, "add">;
  coordinator?: Partial<Omit<CoordinatorOptions, "dataDir" | "registry" | "logger">>;
  /** `corsOrigins` adds to the loopback origins (any port) that `podium dev` always allows. */
  gateway?: Partial<Pick<GatewayOptions, "maxJsonBytes" | "maxBundleBytes" | "extensions" | "corsOrigins" | "consoleDir">>;
}

export interface DevServer {
  readonly url: string;
  readonly port: number;
  readonly coordinator: Coordinator;
  readonly gateway: Gateway;
  readonly deployments: DeploymentRecord[];
  close(): Promise<void>;
}

/** Packs and uploads every subfolder of `dir` that has a podium.json. */
export async function deployDirectory(registry: LocalRegistry, dir: string): Promise<DeploymentRecord[]> {
  const out: DeploymentRecord[] = [];
  for (const name of fs.readdirSync(dir).sort()) {
    const bundleDir = path.join(dir, name);
    if (!fs.existsSync(path.join(bundleDir, MANIFEST_FILE))) continue;
    const { deployment } = await registry.upload(await packBundle(bundleDir));
    out.push(deployment);
  }
  return out;
}

export async function createDevServer(options: DevServerOptions): Promise<DevServer> {
  const logger = options.logger ?? createLogger({ fields: { service: "podium-dev" } });
  fs.mkdirSync(options.dataDir, { recursive: true });
  const registry = new LocalRegistry({ dir: path.join(options.dataDir, "registry") });
  const deployments = options.agentsDir ? await deployDirectory(registry, options.agentsDir) : [];
  const coordinator = createCoordinator({
    ...options.coordinator,
    coordinatorId: options.coordinator?.coordinatorId ?? "local",
    // The developer's own agents on their machine: bubblewrap when it works, a loud warning when not.
    sandbox: options.coordinator?.sandbox ?? "auto",
    dataDir: options.dataDir,
    registry,
    logger: logger.child({ service: "coordinator" }),
    ...(options.tracing ? { spanExporter: options.tracing } : {}),
  });
  const transport = createInProcessTransport(coordinator.routes);
  const directory = new StaticCoordinatorDirectory([coordinatorClients(coordinator.id, transport)]);
  const more = options.gateway?.extensions;
  const gateway = createGateway({
    ...options.gateway,
    extensions: (core, context) => [...publicExtensions(core, context), ...(more?.(core, context) ?? [])],
    corsOrigins: [...LOOPBACK_ORIGINS, ...(options.gateway?.corsOrigins ?? [])],
    directory,
    registry,
    apiKeys: options.apiKeys ?? [],
    logger: logger.child({ service: "gateway" }),
    metrics: [coordinator.metrics],
    ...(options.tracing ? { spanExporter: options.tracing } : {}),
  });
  const host = options.host ?? "127.0.0.1";
  let port: number;
  try {
    port = await gateway.listen(options.port ?? 7070, host);
  } catch (err) {
    await coordinator.close();
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}`,
    port,
    coordinator,
    gateway,
    deployments,
    close() {
      closing ??= (async () => {
        await coordinator.close();
        await gateway.close();
        await directory.close();
      })();
      return closing;
    },
  };
}
