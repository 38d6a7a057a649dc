/**
 * Builds the request handler a service serves on its one port: Connect, gRPC and gRPC-Web for the
 * given routes (plus gRPC health and reflection), and a fallback for everything else (REST).
 *
 * A request message that is not valid protobuf (or nests deeper than protobuf-es' recursion limit of
 * 100) is INVALID_ARGUMENT, like malformed JSON: connect-es 2.2 says INTERNAL for binary parse errors,
 * which patches/@connectrpc+connect+2.2.0.patch changes for the request side only (applied by
 * `npm ci`'s postinstall). Responses a client cannot parse stay INTERNAL.
 */
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { NodeHandlerFn } from "./node-http.js";
import type { DescService } from "@bufbuild/protobuf";
import { type HealthStatusRegistry, healthRoutes } from "./grpc-health.js";
import { reflectionRoutes } from "./grpc-reflection.js";
import type { RequestHandler } from "./one-port-server.js";

export interface ConnectHandlerOptions {
  routes: ((router: ConnectRouter) => void)[];
  /** Services to advertise through reflection. */
  services: DescService[];
  interceptors?: Interceptor[];
  health: HealthStatusRegistry;
  fallback?: NodeHandlerFn;
  /** Largest accepted request message. */
  readMaxBytes?: number;
}

export function createConnectHandler(options: ConnectHandlerOptions): RequestHandler {
  const adapter = connectNodeAdapter({
    routes: (router) => {
      for (const routes of options.routes) routes(router);
      healthRoutes(options.health)(router);
      reflectionRoutes(options.services)(router);
    },
    interceptors: options.interceptors ?? [],
    readMaxBytes: options.readMaxBytes ?? 64 * 1024 * 1024,
    ...(options.fallback ? { fallback: options.fallback } : {}),
  });
  return (req, res) => adapter(req, res);
}
