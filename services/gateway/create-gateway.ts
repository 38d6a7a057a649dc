/**
 * The gateway: API-key auth, placement across coordinators, deployment upload, and one port that
 * serves REST + WebSocket (HTTP/1.1) and Connect, gRPC, gRPC-Web (HTTP/1.1 and h2c).
 */
import { isAnswering } from "./coordinator-directory.js";
import type { WsOutboundOptions } from "./ws-outbound.js";
import { GatewayCore } from "./gateway-core.js";
import { gatewayRoutes } from "./gateway-routes.js";
import { createRestApi } from "./rest-api.js";
import { createWsUpgradeHandler, instanceConnectRoute } from "./ws-bridge.js";
import { withCors } from "./cors-policy.js";
import { createConsoleAssets } from "./console-assets.js";
import { ApiKeyAuth, OPEN_SERVICES } from "../shared/api-key-auth.js";
import { createConnectHandler } from "../shared/connect-handler.js";
import { HealthStatusRegistry, ServingStatus } from "../shared/grpc-health.js";
import { OnePortServer } from "../shared/one-port-server.js";
import { requestLogInterceptor } from "../shared/request-log.js";
import { InstanceService } from "../../gen/podium/v1/instance_service_pb.js";
import { DeploymentService } from "../../gen/podium/v1/deployment_service_pb.js";
import { ReplicationService } from "../../gen/podium/v1/replication_service_pb.js";
import { FileService } from "../../gen/podium/v1/file_service_pb.js";
import { MetricsRegistry, renderAll } from "../shared/metrics.js";
import { compileGatewayOptions, type GatewayOptions } from "./gateway-options.js";

export type { ExtensionContext, GatewayExtension, GatewayOptions } from "./gateway-options.js";

export interface Gateway {
  readonly core: GatewayCore;
  readonly health: HealthStatusRegistry;
  listen(port: number, host?: string): Promise<number>;
  close(): Promise<void>;
}

export function createGateway(gatewayOptions: GatewayOptions): Gateway {
  const options = compileGatewayOptions(gatewayOptions);
  const { logger, maxJsonBytes, maxBundleBytes } = options;
  const core = new GatewayCore({
    directory: options.directory,
    registry: options.registry,
    resumeWindowMs: options.resumeWindowMs,
    failoverWaitMs: options.failoverWaitMs,
    ...(options.spanExporter ? { spanExporter: options.spanExporter } : {}),
  });
  const auth = new ApiKeyAuth(options.apiKeys);
  const health = new HealthStatusRegistry({ "": ServingStatus.SERVING });
  let slowClientCloses = 0;
  const outbound: WsOutboundOptions = { ...options.wsOutbound, onTooSlow: () => slowClientCloses++ };
  const extensions = options.extensions(core, { outbound });
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
    metrics: () => renderAll([metrics, ...options.metrics]),
    onResponse: (status) => responses.set(status, (responses.get(status) ?? 0) + 1),
    logger,
  });
  const consoleAssets = createConsoleAssets(options.consoleDir);
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
  const server = new OnePortServer({ handler: withCors(handler, options.corsOrigins), onUpgrade: ws.handler });
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
