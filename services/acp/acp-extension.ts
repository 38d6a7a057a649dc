/** Serves the ACP adapter over WebSocket at /acp on the gateway. */
import type { GatewayCore } from "../gateway/gateway-core.js";
import type { GatewayExtension } from "../gateway/create-gateway.js";

export function acpExtension(_core: GatewayCore): GatewayExtension {
  return {};
}
