/**
 * The `connect` function a gateway gives ValkeyCoordinatorDirectory in production: gRPC over HTTP/2
 * to the coordinator's advertised address, one connection per coordinator, with keepalive PINGs so a
 * stream to a host that vanished without closing its socket fails instead of hanging, and a circuit
 * breaker (coordinator-breaker.ts) so a coordinator that fails or hangs is skipped before its
 * heartbeat expires.
 */
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { CoordinatorService } from "../../gen/podium/v1/coordinator_service_pb.js";
import { coordinatorClients, type SendMessageCall } from "../gateway/coordinator-directory.js";
import { MessageStreamClient } from "./message-stream-client.js";
import { CoordinatorBreaker, type CircuitState, type CoordinatorBreakerOptions } from "../gateway/coordinator-breaker.js";
import type { Logger } from "../shared/logger.js";
import type { ClosableCoordinatorClients, CoordinatorAddress } from "./valkey-directory.js";

export interface GrpcCoordinatorConnectorOptions {
  /** e.g. [clusterSecretInterceptor(secret)] from services/gateway/main.ts. */
  interceptors?: Interceptor[];
  /** PING interval on connections with open streams. Default 5000. */
  pingIntervalMs?: number;
  /** A PING unanswered this long closes the connection and its streams. Default 5000. */
  pingTimeoutMs?: number;
  /** Circuit breaker tuning; `false` turns it off. */
  breaker?: CoordinatorBreakerOptions | false;
  logger?: Logger;
  /** Every breaker state change (metrics). */
  onCircuitChange?(coordinatorId: string, state: CircuitState): void;
}

/** `maxSessionMemory` (MB) of the connection to a coordinator. */
const SESSION_MEMORY_MB = 1024;

export function grpcCoordinatorConnector(options: GrpcCoordinatorConnectorOptions = {}): (info: CoordinatorAddress) => ClosableCoordinatorClients {
  return ({ coordinatorId, address }) => {
    // Every client's calls and streams to this coordinator share the connection: Node's default cap on a
    // session's memory (10 MB, which counts request bodies not yet sent) would turn new calls away
    // (ENHANCE_YOUR_CALM) while a few large messages are in flight.
    const sessionManager = new Http2SessionManager(address, { pingIntervalMs: options.pingIntervalMs ?? 5000, pingTimeoutMs: options.pingTimeoutMs ?? 5000 }, { maxSessionMemory: SESSION_MEMORY_MB });
    // No gzip between gateway and coordinator (acceptCompression: []): on a LAN it costs more CPU than it saves.
    const transportFor = (interceptors: Interceptor[]) => createGrpcTransport({ baseUrl: address, sessionManager, interceptors, acceptCompression: [] });
    const interceptors = options.interceptors ?? [];
    // Placement when every circuit is open goes past the breaker, on the same connection.
    const unguarded = coordinatorClients(coordinatorId, transportFor(interceptors));
    // Probes get a connection of their own: on the shared one their answer would queue behind the streams'
    // data (HTTP/2 multiplexes over one TCP stream), so a busy connection would look like a dead coordinator.
    const probeSessions = new Http2SessionManager(address, { pingIntervalMs: options.pingIntervalMs ?? 5000, pingTimeoutMs: options.pingTimeoutMs ?? 5000 });
    const probeClient = createClient(CoordinatorService, createGrpcTransport({ baseUrl: address, sessionManager: probeSessions, interceptors, acceptCompression: [] }));
    const breaker =
      options.breaker === false
        ? undefined
        : new CoordinatorBreaker(
            {
              coordinatorId,
              probe: (signal) => probeClient.getCoordinatorInfo({}, { signal }),
              ...(options.logger ? { logger: options.logger } : {}),
              onStateChange: (state) => options.onCircuitChange?.(coordinatorId, state),
            },
            options.breaker,
          );
    const transport = transportFor(breaker ? [...interceptors, breaker.interceptor] : interceptors);
    // Messages go on one stream (past the interceptor: the breaker guards each message, not the stream).
    const messages = new MessageStreamClient(unguarded.control, unguarded.sendMessage);
    const sendMessage: SendMessageCall = breaker
      ? (req, callOptions) => breaker.guard(callOptions?.signal, (signal) => messages.send(req, { ...callOptions, ...(signal ? { signal } : {}) }))
      : messages.send;
    const close = (graceMs = 0): void => {
      breaker?.close();
      probeSessions.abort();
      const closeConnection = (): void => {
        messages.close();
        sessionManager.abort();
      };
      if (graceMs > 0) setTimeout(closeConnection, graceMs).unref();
      else closeConnection();
    };
    return { ...coordinatorClients(coordinatorId, transport), sendMessage, close, ...(breaker ? { breaker, unguarded } : {}) };
  };
}
