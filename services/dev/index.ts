/**
 * `@podium-agents/podium/dev`: Podium embedded in a Node process (`podium dev` as a library). This
 * is what `@podium-agents/testing` starts for an agent author's tests; it follows the server's
 * version, not a stable API of its own.
 *
 *   const server = await createDevServer({ port: 0, dataDir, logger: silentLogger });
 *   const { deployment } = await new LocalRegistry({ dir: `${dataDir}/registry` }).upload(await packBundle("./my-agent"));
 */
export { createDevServer, deployDirectory, type DevServer, type DevServerOptions } from "./create-dev-server.js";
export { LocalRegistry, type LocalRegistryOptions } from "../registry/local-registry.js";
export { packBundle, type PackOptions } from "../registry/bundle-archive.js";
export { createLogger, silentLogger, type Logger, type LoggerOptions } from "../shared/logger.js";
