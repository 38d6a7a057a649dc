/**
 * The upload keeper's own process (upload-keeper.ts starts it; docs/replication.md "A coordinator that
 * dies"). While its coordinator lives, it only listens: one NDJSON line on stdin per Litestream the
 * coordinator starts ({"watch": agentId, "pid": N}) or stops ({"unwatch": agentId}). When stdin ends
 * (the coordinator exited or was killed), the Litestreams it still watches are making their final
 * upload: for each, it keeps `<prefix>agent-uploading:<agentId>` in Valkey alive until that Litestream
 * exits, so the agent's next owner restores only once the upload is in S3. A Litestream still running
 * after `orphanLimitMs` (S3 unreachable: Litestream retries forever) is killed. Then the keeper exits.
 */
import type { Readable } from "node:stream";
import type { Redis } from "ioredis";
import { ClusterKeys } from "../cluster/cluster-keys.js";
import { processStartTime } from "../coordinator/sandbox/system-tools.js";
import { errorMessage } from "../shared/errors.js";

export interface UploadKeeperProcessOptions {
  input: Readable;
  redis: Redis;
  keyPrefix: string;
  /** The key's value: the coordinator and this process, so only this keeper deletes what it set. */
  owner: string;
  /** How long after the coordinator's end a Litestream may still upload. Default 30000. */
  orphanLimitMs?: number;
  /** Period of the key refresh. Default 1000 (the key lives 3 periods). */
  periodMs?: number;
  log: (level: "info" | "warn", msg: string, fields?: Record<string, unknown>) => void;
}

interface Watched {
  pid: number;
  started: string | undefined;
}

/** Deletes the key only while it still holds this keeper's value. */
const DELETE_IF_OURS = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`;

/** Parses one stdin line; undefined when malformed. */
export function parseKeeperCommand(line: string): { watch: string; pid: number } | { unwatch: string } | undefined {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof json !== "object" || json === null) return undefined;
  const { watch, pid, unwatch } = json as Record<string, unknown>;
  if (typeof watch === "string" && typeof pid === "number" && Number.isInteger(pid) && pid > 1) return { watch, pid };
  if (typeof unwatch === "string") return { unwatch };
  return undefined;
}

/** Resolves when the keeper is done: its coordinator ended and every watched Litestream exited (or was killed). */
export async function runUploadKeeper(options: UploadKeeperProcessOptions): Promise<void> {
  const keys = new ClusterKeys(options.keyPrefix);
  const watched = new Map<string, Watched>();
  let pending = "";
  options.input.setEncoding("utf8");
  options.input.on("data", (chunk: string) => {
    pending += chunk;
    let newline: number;
    while ((newline = pending.indexOf("\n")) >= 0) {
      const command = parseKeeperCommand(pending.slice(0, newline));
      pending = pending.slice(newline + 1);
      if (!command) continue;
      if ("watch" in command) watched.set(command.watch, { pid: command.pid, started: processStartTime(command.pid) });
      else watched.delete(command.unwatch);
    }
  });
  await new Promise<void>((resolve) => {
    options.input.once("end", resolve);
    options.input.once("close", resolve);
    options.input.once("error", () => resolve());
  });
  const alive = (w: Watched): boolean => w.started !== undefined && processStartTime(w.pid) === w.started;
  for (const [agentId, w] of watched) if (!alive(w)) watched.delete(agentId);
  if (watched.size === 0) return;
  const limitMs = options.orphanLimitMs ?? 30_000;
  const periodMs = options.periodMs ?? 1000;
  const began = Date.now();
  options.log("info", "coordinator ended while Litestream was running; holding its agents until their final uploads are done", { agents: [...watched.keys()].join(",") });
  const forget = async (agentId: string): Promise<void> => {
    watched.delete(agentId);
    await options.redis.eval(DELETE_IF_OURS, 1, keys.agentUploading(agentId), options.owner).catch((err: unknown) => {
      options.log("warn", "could not clear the upload key (it expires by itself)", { agent_id: agentId, error: errorMessage(err) });
    });
  };
  let refreshedAt = 0;
  while (watched.size > 0) {
    const now = Date.now();
    const overdue = now - began >= limitMs;
    const refresh = now - refreshedAt >= periodMs;
    if (refresh) refreshedAt = now;
    for (const [agentId, w] of [...watched]) {
      if (!alive(w)) {
        options.log("info", "final upload finished", { agent_id: agentId, ms: now - began });
        await forget(agentId);
      } else if (overdue) {
        options.log("warn", "final upload did not finish in time; stopping Litestream (the agent's last writes may not be in S3)", { agent_id: agentId, limit_ms: limitMs });
        try {
          process.kill(-w.pid, "SIGKILL"); // its process group: relay, Litestream, tail
        } catch {
          // already gone
        }
        await forget(agentId);
      } else if (refresh) {
        await options.redis.set(keys.agentUploading(agentId), options.owner, "PX", periodMs * 3).catch((err: unknown) => {
          options.log("warn", "could not record a final upload in progress", { agent_id: agentId, error: errorMessage(err) });
        });
      }
    }
    // Exits are noticed within 100 ms, so the next owner waits no longer than the upload.
    if (watched.size > 0) await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
