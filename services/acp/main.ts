/**
 * `podium acp --url URL --deployment ID [--api-key KEY] [--stop-on-exit]`: an ACP agent over stdio
 * (what editors such as Zed launch) backed by a Podium gateway through PodiumClient. stdout carries
 * only the protocol (NDJSON); logs go to stderr. Exits 0 when the editor closes stdin.
 */
import { Readable, Writable } from "node:stream";
import { parseArgs } from "node:util";
import * as acp from "@agentclientprotocol/sdk";
import { PodiumClient } from "../../packages/client/src/index.js";
import { createLogger, type LoggerLevel } from "../shared/logger.js";
import { AcpAgent } from "./acp-agent.js";
import { ClientBackend } from "./client-backend.js";

const USAGE = "usage: podium acp --url URL --deployment ID [--api-key KEY] [--stop-on-exit] [--log-level debug|info|warn|error]";

function firstKey(raw: string | undefined): string | undefined {
  return raw
    ?.split(",")
    .map((k) => k.trim())
    .find((k) => k.length > 0);
}

export async function runAcp(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      url: { type: "string" },
      deployment: { type: "string" },
      "api-key": { type: "string" },
      "stop-on-exit": { type: "boolean", default: false },
      "log-level": { type: "string", default: "warn" },
      "cancel-grace-ms": { type: "string" },
    },
  });
  const url = values.url ?? env.PODIUM_URL;
  const deploymentId = values.deployment ?? env.PODIUM_DEPLOYMENT;
  if (!url || !deploymentId) {
    process.stderr.write(`podium acp: --url (or PODIUM_URL) and --deployment (or PODIUM_DEPLOYMENT) are required\n${USAGE}\n`);
    return 2;
  }
  const level = values["log-level"] as LoggerLevel;
  if (!["debug", "info", "warn", "error", "silent"].includes(level)) {
    process.stderr.write(`podium acp: unknown log level "${level}"\n${USAGE}\n`);
    return 2;
  }
  const grace = values["cancel-grace-ms"] === undefined ? undefined : Number(values["cancel-grace-ms"]);
  if (grace !== undefined && (!Number.isFinite(grace) || grace <= 0)) {
    process.stderr.write(`podium acp: --cancel-grace-ms must be a positive number\n`);
    return 2;
  }
  const logger = createLogger({ level, fields: { service: "podium-acp" } });
  const apiKey = values["api-key"] ?? firstKey(env.PODIUM_API_KEY);
  const client = new PodiumClient({ url, ...(apiKey ? { apiKey } : {}) }, {});
  const backend = new ClientBackend(client);
  const agent = new AcpAgent({
    backend,
    logger,
    deploymentId,
    stopOnClose: values["stop-on-exit"] === true,
    ...(grace !== undefined ? { cancelGraceMs: grace } : {}),
  });
  const stream = acp.ndJsonStream(Writable.toWeb(process.stdout), Readable.toWeb(process.stdin) as ReadableStream<Uint8Array>);
  const stop = () => process.stdin.destroy();
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  try {
    await agent.serve(stream);
  } finally {
    process.off("SIGTERM", stop);
    process.off("SIGINT", stop);
    await backend.close();
  }
  return 0;
}
