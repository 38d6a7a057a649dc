/**
 * A coordinator that dies (kill -9, a crash, out of memory) leaves its agents' Litestreams running for
 * their final upload (output-relay.ts). Meanwhile the agents' leases expire and another coordinator
 * takes them; restoring before that upload is in S3 would lose the writes of their last seconds.
 *
 * The upload keeper closes that window: a small process per coordinator, started with its first
 * replicated agent, outside its process group so it outlives it. The coordinator tells it which Litestream runs for which agent.
 * When the coordinator ends, the keeper marks in Valkey every agent whose Litestream is still uploading
 * (`agent-uploading:<id>`, refreshed until that Litestream exits); prepare() on the next owner waits
 * for the mark to go (waitForFinalUpload). The logic is upload-keeper-process.ts.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Redis } from "ioredis";
import type { ClusterKeys } from "../cluster/cluster-keys.js";
import { LineSplitter } from "../coordinator/line-splitter.js";
import { errorMessage } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";

/** What the keeper's process gets (PODIUM_UPLOAD_KEEPER). */
export interface UploadKeeperConfig {
  redis: { host?: string; port?: number; path?: string; username?: string; password?: string; db?: number; tls?: object };
  keyPrefix: string;
  coordinatorId: string;
  orphanLimitMs: number;
}

export interface UploadKeeperOptions {
  /** The coordinator's Valkey connection: the keeper opens its own with the same settings. */
  redis: Redis;
  keyPrefix: string;
  coordinatorId: string;
  /** How long a dead coordinator's Litestream may still upload before the keeper kills it. Default 30000. */
  orphanLimitMs?: number;
  logger: Logger;
}

/** The keeper's entry beside this module: compiled (dist/, run by node) or source (run through tsx). */
const COMPILED = import.meta.url.endsWith(".js");
const MAIN = path.join(path.dirname(fileURLToPath(import.meta.url)), COMPILED ? "upload-keeper-main.js" : "upload-keeper-main.ts");
const NODE_ARGS = COMPILED ? [MAIN] : ["--import", createRequire(import.meta.url).resolve("tsx"), MAIN];

export class UploadKeeper {
  private readonly watched = new Map<string, number>();
  private child: ChildProcess | undefined;
  private closed = false;
  private restarting = false;

  private constructor(private readonly options: UploadKeeperOptions) {}

  /** The process starts with the first watch(): a coordinator without agents has none. */
  static start(options: UploadKeeperOptions): UploadKeeper {
    return new UploadKeeper(options);
  }

  /** Litestream of `agentId` now runs as process group `pid` (its relay). */
  watch(agentId: string, pid: number): void {
    this.watched.set(agentId, pid);
    // Spawned now, it reads this line even if the coordinator dies before the keeper is up.
    if (!this.child && !this.closed && !this.restarting) this.spawn();
    else this.send({ watch: agentId, pid });
  }

  /** Litestream of `agentId` stopped (released or fenced). */
  unwatch(agentId: string): void {
    if (!this.watched.delete(agentId)) return;
    this.send({ unwatch: agentId });
  }

  /** Ends the keeper: it exits at once when nothing runs, or holds what still runs (close timed out). */
  close(): void {
    this.closed = true;
    this.child?.stdin?.end();
  }

  private send(command: object): void {
    if (this.closed) return;
    this.child?.stdin?.write(`${JSON.stringify(command)}\n`);
  }

  private spawn(): void {
    const { options } = this;
    const { host, port, path: socket, username, password, db, tls } = options.redis.options;
    const config: UploadKeeperConfig = {
      redis: { host, port, path: socket, username, password, db, ...(tls ? { tls: tls as object } : {}) },
      keyPrefix: options.keyPrefix,
      coordinatorId: options.coordinatorId,
      orphanLimitMs: options.orphanLimitMs ?? 30_000,
    };
    const logger = options.logger.child({ component: "upload-keeper" });
    let child: ChildProcess;
    try {
      // detached: its own process group, so a signal to the coordinator's group does not end it.
      child = spawn(process.execPath, NODE_ARGS, {
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", PODIUM_UPLOAD_KEEPER: JSON.stringify(config) },
        stdio: ["pipe", "ignore", "pipe"],
        detached: true,
      });
    } catch (err) {
      logger.warn("cannot start the upload keeper: a coordinator that dies may lose its agents' last writes", { error: errorMessage(err) });
      return;
    }
    this.child = child;
    child.stdin?.on("error", () => undefined);
    const splitter = new LineSplitter((lines) => {
      for (const line of lines) {
        try {
          const { level, msg, ...fields } = JSON.parse(line) as { level: "info" | "warn"; msg: string };
          logger[level === "warn" ? "warn" : "info"](msg, fields);
        } catch {
          logger.warn(line);
        }
      }
    });
    child.stderr?.on("data", (chunk: Buffer) => splitter.push(chunk));
    child.once("error", (err) => logger.warn("upload keeper failed", { error: errorMessage(err) }));
    child.once("exit", (code, signal) => {
      splitter.end();
      if (this.closed) return;
      logger.warn("upload keeper exited; starting it again", { code, signal });
      this.child = undefined;
      this.restarting = true;
      setTimeout(() => {
        this.restarting = false;
        if (!this.closed) this.spawn();
      }, 1000).unref();
    });
    // It must not keep this process alive, nor be killed with it.
    child.unref();
    (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    (child.stderr as unknown as { unref?: () => void } | null)?.unref?.();
    for (const [agentId, pid] of this.watched) child.stdin?.write(`${JSON.stringify({ watch: agentId, pid })}\n`);
  }
}

/**
 * Waits while a dead coordinator's Litestream is still making the agent's final upload (at most
 * `timeoutMs`). Resolves how long it waited, or undefined when no upload was going on.
 */
export async function waitForFinalUpload(redis: Redis, keys: ClusterKeys, agentId: string, timeoutMs: number, signal?: AbortSignal): Promise<number | undefined> {
  const began = Date.now();
  if ((await redis.exists(keys.agentUploading(agentId))) === 0) return undefined;
  do {
    if (Date.now() - began >= timeoutMs) break;
    if (signal?.aborted) throw new ConnectError("instance creation was cancelled", Code.Canceled);
    await new Promise((resolve) => setTimeout(resolve, 100));
  } while ((await redis.exists(keys.agentUploading(agentId))) === 1);
  return Date.now() - began;
}
