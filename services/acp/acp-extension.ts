/**
 * Serves the ACP adapter over WebSocket at `/acp` on the gateway (for browsers): one ACP
 * connection per socket, one JSON-RPC message per text frame, backed by the in-process gateway.
 * `?deployment=ID` picks the deployment sessions run (or `_meta.podium.deploymentId` on
 * session/new). Auth is the gateway's (`?api_key=` or an Authorization header). The ACP SDK (its zod
 * schemas, ~70 ms) loads with the first connection, not with the server.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { GatewayCore } from "../gateway/gateway-core.js";
import type { GatewayExtension } from "../gateway/create-gateway.js";
import { errorMessage } from "../shared/errors.js";
import { createLogger, type Logger } from "../shared/logger.js";
import { createSessionDirectory } from "./session-directory.js";
import { GatewayBackend } from "./gateway-backend.js";
import { gatewayHandlers } from "../gateway/gateway-handlers.js";
import { MAX_ID_LENGTH } from "../gateway/request-validators.js";
import { wsAcpStream } from "./ws-acp-stream.js";

export interface AcpExtensionOptions {
  logger?: Logger;
  cancelGraceMs?: number;
}

export function acpExtension(core: GatewayCore, options: AcpExtensionOptions = {}): GatewayExtension {
  const logger = options.logger ?? createLogger({ fields: { service: "acp" } });
  const backend = new GatewayBackend(gatewayHandlers(core));
  const directory = createSessionDirectory();
  let agentModule: Promise<typeof import("./acp-agent.js")> | undefined;
  return {
    wsRoutes: [
      {
        pattern: /^\/acp\/?$/,
        async accept(_req, _params, url) {
          const deploymentId = url.searchParams.get("deployment") ?? undefined;
          if (deploymentId !== undefined && (deploymentId.length === 0 || deploymentId.length > MAX_ID_LENGTH)) {
            throw new ConnectError(`deployment must be 1 to ${MAX_ID_LENGTH} characters`, Code.InvalidArgument);
          }
          return (ws) => {
            // Listening starts now: frames that arrive while the SDK loads wait in the stream.
            const stream = wsAcpStream(ws);
            agentModule ??= import("./acp-agent.js").catch((err: unknown) => {
              agentModule = undefined; // the next connection tries again
              throw err;
            });
            agentModule
              .then(({ AcpAgent }) => {
                const agent = new AcpAgent({
                  backend,
                  logger,
                  directory,
                  ...(deploymentId ? { deploymentId } : {}),
                  ...(options.cancelGraceMs !== undefined ? { cancelGraceMs: options.cancelGraceMs } : {}),
                });
                return agent.serve(stream);
              })
              .catch((err: unknown) => {
                logger.warn("ACP connection failed", { error: errorMessage(err) });
                if (ws.readyState === ws.OPEN) ws.close(1011, "ACP connection failed");
              });
          };
        },
      },
    ],
  };
}
