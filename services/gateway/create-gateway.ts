/**
 * The gateway: API-key auth, placement across coordinators, deployment upload, and one port that
 * serves REST + WebSocket (HTTP/1.1) and Connect, gRPC, gRPC-Web (HTTP/1.1 and h2c).
 */
import type { ConnectRouter } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";
import { isAnswering, type CoordinatorDirectory } from "./coordinator-directory.js";
import type { WsOutboundOptions } from "./ws-outbound.js";
import { GatewayCore } from "./gateway-core.js";
import { gatewayRoutes } from "./gateway-routes.js";
import { createRestApi } from "./rest-api.js";
import { createWsUpgradeHandler, instanceConnectRoute, type WsRoute } from "./ws-bridge.js";
import { withCors } from "./cors-policy.js";
import { createConsoleAssets, defaultConsoleDir } from "./console-assets.js";
import type { DeploymentRegistry } from "../registry/deployment-registry.js";
import { ApiKeyAuth, OPEN_SERVICES } from "../shared/api-key-auth.js";
import { createConnectHandler } from "../shared/connect-handler.js";
import { HealthStatusRegistry, ServingStatus } from "../shared/grpc-health.js";
import { createLogger, type Logger } from "../shared/logger.js";
import { OnePortServer } from "../shared/one-port-server.js";
import { requestLogInterceptor } from "../shared/request-log.js";
import { InstanceService } from "../../gen/podium/v1/instance_service_pb.js";
import { DeploymentService } from "../../gen/podium/v1/deployment_service_pb.js";
import { ReplicationService } from "../../gen/podium/v1/replication_service_pb.js";
import { FileService } from "../../gen/podium/v1/file_service_pb.js";
import { MetricsRegistry, renderAll } from "../shared/metrics.js";
import type { SpanSink } from "../tracing/tracer.js";

export interface GatewayExtension {
  routes?: (router: ConnectRouter) => void;
  services?: DescService[];
  wsRoutes?: WsRoute[];
}

/** What an extension gets from the gateway it is mounted on, beside its core. */
export interface ExtensionContext {
  /** The gateway's bounds for a slow WebSocket client (its 4008 closes are counted in the gateway's metrics). */
  outbound: WsOutboundOptions;
}

export interface GatewayOptions {
  directory: CoordinatorDirectory;
  registry: DeploymentRegistry;
  /** Accepted client keys; empty disables auth (only for dev mode on loopback). */
  apiKeys: string[];
  logger?: Logger;
  /** Largest JSON request body / WebSocket frame (default 2 MiB). */
  maxJsonBytes?: number;
  /** Largest deployment upload (default 100 MiB). */
  maxBundleBytes?: number;
  /**
   * Services mounted on the same port beside the core API, chosen by the process entry point (`podium
   * gateway`, `podium dev`: the translator's `/events` and the ACP bridge): the gateway imports none of them.
   */
  extensions?: (core: GatewayCore, context: ExtensionContext) => GatewayExtension[];
  /** More metrics served on GET /metrics after the gateway's own (dev mode: the in-process coordinator's). */
  metrics?: MetricsRegistry[];
  /** How much a slow WebSocket client may leave unread before it is closed with 4008 (ws-outbound.ts). */
  wsOutbound?: WsOutboundOptions;
  /** Origins whose pages may call the API from a browser (cors-policy.ts); none by default. */
  corsOrigins?: string[];
  /** The OTLP batcher the gateway's spans also go to (services/tracing): then every request is traced; without one only sampled callers' are. */
  spanExporter?: SpanSink;
  /** The built web console served at /console/ (console-assets.ts); default dist/console of the package. */
  consoleDir?: string;
}

export interface Gateway {
  readonly core: GatewayCore;
  readonly health: HealthStatusRegistry;
  listen(port: number, host?: string): Promise<number>;
  close(): Promise<void>;
}

export function createGateway(options: GatewayOptions): Gateway {
  const logger = options.logger ?? createLogger({ fields: { service: "gateway" } });
  const core = new GatewayCore({ directory: options.directory, registry: options.registry, ...(options.spanExporter ? { spanExporter: options.spanExporter } : {}) });
  const auth = new ApiKeyAuth(options.apiKeys);
  const maxJsonBytes = options.maxJsonBytes ?? 2 * 1024 * 1024;
  const maxBundleBytes = options.maxBundleBytes ?? 100 * 1024 * 1024;
  const health = new HealthStatusRegistry({ "": ServingStatus.SERVING });
  let slowClientCloses = 0;
  const outbound: WsOutboundOptions = { ...options.wsOutbound, onTooSlow: () => slowClientCloses++ };
  const extensions = options.extensions?.(core, { outbound }) ?? [];
  const responses = new Map<number, number>();
  const metrics = new MetricsRegistry().register(
    { name: "podium_gateway_coordinators", help: "Coordinators this gateway can place on.", type: "gauge", collect: async () => (await options.directory.all()).length },
    {
      name: "podium_gateway_coordinators_not_answering",
      help: "Coordinators whose circuit breaker is open (they failed or hung): no placement or calls until a probe answers.",
      type: "gauge",
      collect: async () => (await options.directory.all()).filter((c) => !isAnswering(c)).length,
    },
    {
      name: "podium_gateway_ws_slow_closes_total",
      help: "WebSocket clients closed with 4008 because they did not read their events fast enough (they reconnect with after_seq).",
      type: "counter",
      collect: () => slowClientCloses,
    },
    {
      name: "podium_gateway_rest_requests_total",
      help: "REST responses by HTTP status (Connect, gRPC and WebSocket traffic is not counted here).",
      type: "counter",
      collect: () => [...responses].map(([code, value]) => ({ labels: { code: String(code) }, value })),
    },
  );
  const rest = createRestApi({
    core,
    auth,
    maxJsonBytes,
    maxBundleBytes,
    health: async () => ({ coordinators: (await options.directory.all()).length }),
    metrics: () => renderAll([metrics, ...(options.metrics ?? [])]),
    onResponse: (status) => responses.set(status, (responses.get(status) ?? 0) + 1),
    logger,
  });
  const consoleAssets = createConsoleAssets(options.consoleDir ?? defaultConsoleDir());
  const ws = createWsUpgradeHandler({
    auth,
    logger,
    maxFrameBytes: maxJsonBytes,
    routes: [instanceConnectRoute(core, logger, outbound), ...extensions.flatMap((e) => e.wsRoutes ?? [])],
  });
  const handler = createConnectHandler({
    routes: [gatewayRoutes(core), ...extensions.flatMap((e) => (e.routes ? [e.routes] : []))],
    services: [InstanceService, DeploymentService, FileService, ReplicationService, ...extensions.flatMap((e) => e.services ?? [])],
    interceptors: [requestLogInterceptor(logger), auth.interceptor(OPEN_SERVICES)],
    health,
    fallback: (req, res) => {
      if (!consoleAssets(req, res)) rest(req, res);
    },
    readMaxBytes: maxBundleBytes,
  });
  const server = new OnePortServer({ handler: withCors(handler, options.corsOrigins ?? []), onUpgrade: ws.handler });
  return {
    core,
    health,
    async listen(port, host = "127.0.0.1") {
      const bound = await server.listen(port, host);
      return bound.port;
    },
    async close() {
      health.setStatus("", ServingStatus.NOT_SERVING);
      ws.close();
      await server.close();
      health.close();
    },
  };
}
