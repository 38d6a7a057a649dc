/** Mounts the translator on the gateway: TranslatorService and the browser bridge at /api/v1/instances/{id}/events. */
import type { GatewayCore } from "../gateway/gateway-core.js";
import type { GatewayExtension } from "../gateway/create-gateway.js";
import { createLogger, type Logger } from "../shared/logger.js";
import { TranslatorService } from "../../gen/podium/v1/translator_service_pb.js";
import { eventsBridgeRoute } from "./events-bridge.js";
import { gatewayHandlers } from "../gateway/gateway-handlers.js";
import { callStream } from "../gateway/edge-call.js";
import { InstanceService } from "../../gen/podium/v1/instance_service_pb.js";
import { translatorRoutes } from "./translator-routes.js";
import type { WsOutboundOptions } from "../gateway/ws-outbound.js";

export interface TranslatorExtensionOptions {
  logger?: Logger;
  /** Bounds what a slow `/events` client may leave unread (see ws-outbound.ts). */
  outbound?: WsOutboundOptions;
}

export function translatorExtension(core: GatewayCore, options: TranslatorExtensionOptions = {}): GatewayExtension {
  const logger = options.logger ?? createLogger({ fields: { service: "translator" } });
  // Both the Connect StreamClientEvents and the `/events` WebSocket stream and send through the gateway's shared handlers.
  const handlers = gatewayHandlers(core);
  return {
    // StreamClientEvents: after_seq 0 replays the whole history, N > 0 what came after update N.
    routes: translatorRoutes({
      async *streamUpdates(instanceId, afterSeq, signal) {
        const request = afterSeq > 0 ? { instanceId, afterSeq: BigInt(afterSeq) } : { instanceId, replayAll: true };
        for await (const { updates } of callStream(handlers, InstanceService.method.streamUpdates, request, { protocol: "connect", signal })) yield* updates;
      },
    }),
    services: [TranslatorService],
    wsRoutes: [eventsBridgeRoute({ core, handlers, logger, ...(options.outbound ? { outbound: options.outbound } : {}) })],
  };
}
