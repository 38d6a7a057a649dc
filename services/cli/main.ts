/**
 * The `podium` command line. This is the only module (with the services' main.ts files) that reads
 * process.env and argv; everything below takes typed options.
 */
import path from "node:path";
import { parseArgs } from "node:util";
import { PODIUM_VERSION } from "../shared/version.js";
import { UsageError } from "./usage-error.js";

const USAGE = `podium ${PODIUM_VERSION} — agent orchestration

Usage:
  podium dev [--port N] [--host H] [--data DIR] [--agents DIR] [--log-level L] [--warm-runners N] [--replicate-bucket B ...]
                                                                   gateway + coordinator in one process
  podium gateway [--port N] [--host H] (--valkey URL | --coordinator URL ...) [--s3-bucket B --s3-endpoint URL | --registry DIR] [--log-level L]
  podium coordinator [--port N] [--host H] [--data DIR] [--capacity N] [--warm-runners N] [--id ID] [--advertise URL]
                     [--valkey URL] [--s3-bucket B --s3-endpoint URL | --registry DIR]
                     [--replicate-bucket B [--replicate-prefix P] [--replicate-endpoint URL]]   Litestream to S3
                     [--metrics-port N]                                               Prometheus
                     [--agent-uids FIRST-LAST] [--agent-network-allow CIDR[:PORT] ...]  sandbox (docs/security.md)
                     [--agent-limit KEY=VALUE ...] [--agent-limit-max KEY=VALUE ...]
                     [--unsandboxed] [--insecure-no-auth]                             opt out (never in production)
                     [--log-level debug|info|warn|error|silent]                       also PODIUM_LOG_LEVEL
  podium init DIR [--runtime ts|python] [--name NAME] [--force]    write a new agent bundle with a test
  podium deploy DIR [--url URL] [--api-key KEY]                    pack a bundle and upload it
  podium restore --agent ID [--timestamp T] [--as NEW_ID] [--url URL] [--api-key KEY]
                                                                   fork an agent as it was at T (RFC 3339 or -5m)
  podium acp --url URL --deployment ID [--api-key KEY] [--stop-on-exit] [--cancel-grace-ms N] [--log-level L]
                                                                   an ACP agent over stdio (for editors)
  podium ps [--agent ID] [--deployment ID]                         live instances
  podium logs ID [-f]                                              an instance's log (-f: follow)
  podium state ID [--at VERSION]                                   its agent's state (as it was at VERSION)
  podium files ID [PATH] [--history]                               its workspace (a file's history)
  podium send ID TEXT                                              send a message, stream the reply
      these take [--url URL] [--api-key KEY] [--json]; JSON also when the output is not a terminal
  podium version

Environment: PODIUM_API_KEY (client keys, comma-separated), PODIUM_CLUSTER_SECRET, PODIUM_URL,
PODIUM_PORT, PODIUM_DATA_DIR, PODIUM_VALKEY_URL, PODIUM_S3_*, PODIUM_REPLICATION_*. Every flag and variable: docs/configuration.md.`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      // Each command loads only its own modules: `podium version` or `podium acp` never load a coordinator.
      case "dev":
        return await (await import("../dev/main.js")).runDev(rest, process.env);
      case "gateway":
        return await (await import("../gateway/main.js")).runGateway(rest, process.env);
      case "coordinator":
        return await (await import("../coordinator/main.js")).runCoordinator(rest, process.env);
      case "acp":
        return await (await import("../acp/main.js")).runAcp(rest, process.env);
      case "init":
        return (await import("./init-command.js")).runInit(rest, (text) => process.stdout.write(text));
      case "deploy": {
        const { values, positionals } = parseArgs({
          args: rest,
          allowPositionals: true,
          options: { url: { type: "string" }, "api-key": { type: "string" } },
        });
        const dir = positionals[0];
        if (!dir) throw new UsageError("deploy needs a bundle directory: podium deploy DIR --url URL");
        const { deploy } = await import("./deploy-command.js");
        const result = await deploy({
          dir: path.resolve(dir),
          url: values.url ?? process.env.PODIUM_URL ?? "http://127.0.0.1:7070",
          apiKey: values["api-key"] ?? firstKey(process.env.PODIUM_API_KEY),
        });
        process.stdout.write(JSON.stringify(result) + "\n");
        return 0;
      }
      case "restore": {
        const { values } = parseArgs({
          args: rest,
          options: { agent: { type: "string" }, timestamp: { type: "string" }, as: { type: "string" }, url: { type: "string" }, "api-key": { type: "string" } },
        });
        if (!values.agent) throw new UsageError("restore needs --agent ID: podium restore --agent ID --timestamp 2026-11-23T13:00:00Z");
        const { restore } = await import("./restore-command.js");
        const result = await restore({
          agentId: values.agent,
          timestamp: values.timestamp,
          targetAgentId: values.as,
          url: values.url ?? process.env.PODIUM_URL ?? "http://127.0.0.1:7070",
          apiKey: values["api-key"] ?? firstKey(process.env.PODIUM_API_KEY),
        });
        process.stderr.write(`restored ${result.source_agent_id}${result.timestamp ? ` as of ${result.timestamp}` : ""} into ${result.agent_id} (${result.restore_ms} ms)\n`);
        process.stdout.write(JSON.stringify(result) + "\n");
        return 0;
      }
      case "ps":
      case "logs":
      case "state":
      case "files":
      case "send": {
        const { runInspect } = await import("./inspect-command.js");
        const stop = new AbortController();
        const onInterrupt = () => stop.abort();
        process.once("SIGINT", onInterrupt);
        try {
          return await runInspect(command, rest, { env: process.env, isTTY: process.stdout.isTTY === true, write: (text) => process.stdout.write(text), signal: stop.signal });
        } finally {
          process.off("SIGINT", onInterrupt);
        }
      }
      case "version":
      case "--version":
        process.stdout.write(PODIUM_VERSION + "\n");
        return 0;
      case undefined:
      case "help":
      case "--help":
      case "-h":
        process.stdout.write(USAGE + "\n");
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`podium: ${message}\n`);
    if (err instanceof UsageError || (err instanceof TypeError && "code" in err && String(err.code).startsWith("ERR_PARSE_ARGS"))) {
      process.stderr.write(`\n${USAGE}\n`);
      return 2;
    }
    return 1;
  }
}

export function firstKey(keys: string | undefined): string | undefined {
  return keys
    ?.split(",")
    .map((k) => k.trim())
    .find((k) => k.length > 0);
}

export function keyList(keys: string | undefined): string[] {
  return (keys ?? "")
    .split(",")
    .map((k) => k.trim())
    .filter((k) => k.length > 0);
}
