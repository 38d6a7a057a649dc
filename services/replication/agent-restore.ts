/**
 * Restores an agent directory from its replicas in S3: `litestream restore` for each of the four
 * databases (in parallel), then the workspace files from chronicle.db (Chronicle.materializeWorkspace).
 * With `timestamp`, every database is restored as of that time (point in time); restoring agent X into
 * another agent's directory is a fork. A brand-new agent has no replica: `restored: false`, nothing
 * written. docs/replication.md has the timings and the limits (what a timestamp can reach).
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { Chronicle, type MaterializeResult } from "../coordinator/chronicle/chronicle.js";
import { errorMessage } from "../shared/errors.js";
import { ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import { createReplicationS3Client, readGenerationMarker, type GenerationMarker } from "./generation-marker.js";
import { generationAt, listGenerationSpans } from "./generation-bounds.js";
import { reconcileRestoredAgent, UNCLEAN_RESTORE_SEQ_GAP, type ReconcileResult } from "./restore-reconcile.js";
import { litestreamBinary, litestreamEnv, renderRestoreConfig } from "./litestream-config.js";
import { agentDatabasePaths, compileS3Settings, replicaPath, type CompiledS3Settings, type ReplicationS3Settings } from "./replication-options.js";

export interface RestoreAgentOptions {
  /** The agent whose replicas are read (for a fork: the original). */
  agentId: string;
  /** The agent directory to fill; it must not hold any of the databases yet. Created when missing. */
  targetDir: string;
  s3: ReplicationS3Settings;
  /** Restore the state as of this time; default: the latest replicated state. */
  timestamp?: Date;
  signal?: AbortSignal;
  /** An S3 client for the settings to reuse (kept open); default: one made and closed for this call. */
  client?: S3Client;
  /**
   * Reconcile the databases when they may have been cut at different points (restore-reconcile.ts): after
   * an unclean loss (with a seq gap) and for point-in-time restores (without). Default true.
   */
  reconcile?: boolean;
  /** Write the workspace files from chronicle.db. Default true. */
  materializeWorkspace?: boolean;
  binary?: string;
}

export interface RestoredDatabase {
  name: string;
  restored: boolean;
  bytes: number;
  ms: number;
}

export interface RestoreAgentResult {
  /** True when at least one database had a replica (the agent existed). */
  restored: boolean;
  /**
   * The latest state of an agent whose last writer released it after a complete final sync (the
   * generation marker records its final positions): the databases are consistent with each other.
   * False after an unclean loss (host death) and for point-in-time restores.
   */
  clean: boolean;
  databases: RestoredDatabase[];
  workspace?: MaterializeResult;
  /** What reconciliation changed, when it ran. */
  reconciled?: ReconcileResult;
  ms: number;
}

const NO_MATCH = /no matching backups/;

interface RunResult {
  code: number | null;
  stderr: string;
}

function runLitestream(binary: string, args: string[], env: Record<string, string>, signal?: AbortSignal): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { env, stdio: ["ignore", "pipe", "pipe"], ...(signal ? { signal } : {}) });
    let stderr = "";
    const collect = (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000));
    child.stdout?.on("data", collect);
    child.stderr?.on("data", collect);
    child.once("error", (err) => {
      if (signal?.aborted) reject(new ConnectError(`restore cancelled`, Code.Canceled));
      else reject(new ConnectError(`cannot run litestream: ${errorMessage(err)}`, Code.Internal));
    });
    child.once("close", (code) => resolve({ code, stderr }));
  });
}

async function restoreDatabase(
  name: string,
  output: string,
  options: RestoreAgentOptions,
  s3: CompiledS3Settings,
  generation: string | undefined,
  configDir: string,
  binary: string,
  client: S3Client,
): Promise<RestoredDatabase> {
  const started = performance.now();
  const configFile = path.join(configDir, `${name}.yml`);
  const replica = replicaPath(s3, options.agentId, name);
  fs.writeFileSync(configFile, renderRestoreConfig({ path: output, replicaPath: replica }, s3), { mode: 0o600 });
  const run = (withGeneration: string | undefined, timestamp: Date | undefined) => {
    const args = ["restore", "-config", configFile, "-o", output, "-if-replica-exists"];
    if (timestamp) args.push("-timestamp", timestamp.toISOString());
    if (withGeneration) args.push("-generation", withGeneration);
    args.push(output);
    return runLitestream(binary, args, litestreamEnv(s3), options.signal);
  };
  let { code, stderr } = await run(generation, options.timestamp);
  // The recorded generation may be gone (retention): let Litestream choose.
  if (generation && (code !== 0 || !fs.existsSync(output))) {
    fs.rmSync(output, { force: true });
    ({ code, stderr } = await run(undefined, options.timestamp));
  }
  // Litestream finds no generation whose uploads span T when the database was not written between its
  // last upload and T (an idle agent, or one stopped at T): its state at T is where that generation ends.
  if (options.timestamp && code === 0 && !fs.existsSync(output) && NO_MATCH.test(stderr)) {
    const spans = await listGenerationSpans(client, s3.bucket, replica, options.signal).catch((err: unknown) => {
      throw new ConnectError(`cannot restore ${name} of agent ${options.agentId}: ${errorMessage(err)}`, Code.Unavailable);
    });
    const holding = generationAt(spans, options.timestamp);
    if (holding && holding.end < options.timestamp) ({ code, stderr } = await run(holding.generation, holding.end));
  }
  if (code !== 0) {
    const why = stderr.trim().split("\n").slice(-3).join(" | ");
    const notFound = /timestamp does not exist|no snapshots available/.test(stderr) || NO_MATCH.test(stderr);
    throw new ConnectError(
      `cannot restore ${name} of agent ${options.agentId}${options.timestamp ? ` at ${options.timestamp.toISOString()}` : ""}: ${why}`,
      notFound ? Code.NotFound : Code.Unavailable,
    );
  }
  const stat = fs.statSync(output, { throwIfNoEntry: false });
  return { name, restored: stat !== undefined, bytes: stat?.size ?? 0, ms: Math.round(performance.now() - started) };
}

/**
 * Whether anything is stored under the agent's replica prefix: one LIST with a delimiter, which answers
 * with at most the four database "directories" and generations.json (never a truncated page).
 */
async function hasReplica(client: S3Client, s3: CompiledS3Settings, agentId: string, signal?: AbortSignal): Promise<boolean> {
  const listed = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: `${s3.prefix}agents/${agentId}/`, Delimiter: "/" }), signal ? { abortSignal: signal } : {});
  return (listed.Contents?.length ?? 0) + (listed.CommonPrefixes?.length ?? 0) > 0;
}

export async function restoreAgent(options: RestoreAgentOptions): Promise<RestoreAgentResult> {
  const started = performance.now();
  const binary = options.binary ?? litestreamBinary();
  const databases = agentDatabasePaths(options.targetDir);
  for (const db of databases) {
    if (fs.existsSync(db.path)) {
      throw new ConnectError(`cannot restore agent ${options.agentId} into ${options.targetDir}: ${db.name} already exists`, Code.FailedPrecondition);
    }
  }
  const s3 = compileS3Settings(options.s3);
  // "The latest" is the generation the last writer recorded (generation-marker.ts); a point in time
  // is found by Litestream across generations.
  const client = options.client ?? createReplicationS3Client(s3);
  let present: boolean;
  let marker: GenerationMarker | undefined;
  try {
    // One LIST first: an agent with no replica (the common case of a new named agent) costs no restore processes.
    present = await hasReplica(client, s3, options.agentId, options.signal);
    if (present && !options.timestamp) marker = await readGenerationMarker(client, s3, options.agentId, options.signal);
  } catch (err) {
    if (!options.client) client.destroy();
    throw new ConnectError(`cannot restore agent ${options.agentId}: ${errorMessage(err)}`, Code.Unavailable);
  }
  fs.mkdirSync(options.targetDir, { recursive: true });
  if (!present) {
    if (!options.client) client.destroy();
    if (options.timestamp) throw new ConnectError(`agent ${options.agentId} has no replicated state at ${options.timestamp.toISOString()}`, Code.NotFound);
    return { restored: false, clean: false, databases: databases.map((db) => ({ name: db.name, restored: false, bytes: 0, ms: 0 })), ms: Math.round(performance.now() - started) };
  }
  const generations = marker?.generations ?? {};
  const clean = databases.every((db) => marker?.positions?.[db.name]?.startsWith(`${generations[db.name] ?? "-"}/`) === true);
  const configDir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-restore-"));
  let results: RestoredDatabase[];
  try {
    results = await Promise.all(databases.map((db) => restoreDatabase(db.name, db.path, options, s3, generations[db.name], configDir, binary, client)));
  } catch (err) {
    for (const db of databases) fs.rmSync(db.path, { force: true });
    throw err;
  } finally {
    fs.rmSync(configDir, { recursive: true, force: true });
    if (!options.client) client.destroy();
  }
  const restored = results.some((r) => r.restored);
  if (options.timestamp && !restored) {
    throw new ConnectError(`agent ${options.agentId} has no replicated state at ${options.timestamp.toISOString()}`, Code.NotFound);
  }
  const result: RestoreAgentResult = { restored, clean: restored && clean, databases: results, ms: 0 };
  if (restored && !clean && (options.reconcile ?? true)) {
    // Before the workspace is written: reconciliation may roll chronicle.db back.
    result.reconciled = reconcileRestoredAgent(options.targetDir, options.timestamp ? { seqGap: 0, unfinished: "close" } : { seqGap: UNCLEAN_RESTORE_SEQ_GAP });
  }
  const chronicleDb = databases.find((db) => db.name === "chronicle.db");
  if (chronicleDb && (options.materializeWorkspace ?? true) && results.find((r) => r.name === "chronicle.db")?.restored) {
    const workspaceDir = path.join(options.targetDir, "workspace");
    fs.mkdirSync(workspaceDir, { recursive: true });
    // One-off: no change-tracking watcher thread.
    const chronicle = Chronicle.open({ workspaceDir, dbPath: chronicleDb.path, watch: false });
    try {
      result.workspace = chronicle.materializeWorkspace();
    } finally {
      chronicle.close();
    }
  }
  result.ms = Math.round(performance.now() - started);
  return result;
}
