/**
 * What the `podium gateway` and `podium dev` entry points mount on their gateway beside the core API: the
 * client contract's `/events` WebSocket (the translator) and the ACP bridge. Only entry points import this
 * module; create-gateway.ts never does (extensions depend on the gateway, not the reverse).
 */
import type { ExtensionContext, GatewayExtension } from "./create-gateway.js";
import type { GatewayCore } from "./gateway-core.js";
import { translatorExtension } from "../translator/translator-extension.js";
import { acpExtension } from "../acp/acp-extension.js";

export function publicExtensions(core: GatewayCore, context: ExtensionContext): GatewayExtension[] {
  return [translatorExtension(core, { outbound: context.outbound }), acpExtension(core)];
}
