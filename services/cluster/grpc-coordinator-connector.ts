/**
 * The `connect` function a gateway gives ValkeyCoordinatorDirectory in production: gRPC over HTTP/2
 * to the coordinator's advertised address, one connection per coordinator, with keepalive PINGs so a
 * stream to a host that vanished without closing its socket fails instead of hanging.
 */
import type { Interceptor } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { coordinatorClients } from "../gateway/coordinator-directory.js";
import type { ClosableCoordinatorClients, CoordinatorAddress } from "./valkey-directory.js";

export interface GrpcCoordinatorConnectorOptions {
  /** e.g. [clusterSecretInterceptor(secret)] from services/gateway/main.ts. */
  interceptors?: Interceptor[];
  /** PING interval on connections with open streams. Default 5000. */
  pingIntervalMs?: number;
  /** A PING unanswered this long closes the connection and its streams. Default 5000. */
  pingTimeoutMs?: number;
}

export function grpcCoordinatorConnector(options: GrpcCoordinatorConnectorOptions = {}): (info: CoordinatorAddress) => ClosableCoordinatorClients {
  return ({ coordinatorId, address }) => {
    const sessionManager = new Http2SessionManager(address, {
      pingIntervalMs: options.pingIntervalMs ?? 5000,
      pingTimeoutMs: options.pingTimeoutMs ?? 5000,
    });
    // No gzip between gateway and coordinator (acceptCompression: []): on a LAN it costs more CPU than it saves.
    const transport = createGrpcTransport({ baseUrl: address, sessionManager, interceptors: options.interceptors ?? [], acceptCompression: [] });
    const close = (graceMs = 0): void => {
      if (graceMs > 0) setTimeout(() => sessionManager.abort(), graceMs).unref();
      else sessionManager.abort();
    };
    return { ...coordinatorClients(coordinatorId, transport), close };
  };
}
