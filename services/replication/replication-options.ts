/**
 * Settings of agent replication (Litestream to S3), options in, compiled options inside: defaults
 * are filled and validated once here, the rest of services/replication reads required fields only.
 * docs/replication.md explains every timing.
 */
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";

/** The four databases of an agent directory, all replicated (docs/storage.md, docs/chronicle.md). */
export const AGENT_DATABASES = ["messages.db", "state.db", "logs.db", "chronicle.db"] as const;
export type AgentDatabase = (typeof AGENT_DATABASES)[number];

export interface ReplicationS3Settings {
  bucket: string;
  /** Key prefix ("prod/"); an agent's databases live under `<prefix>agents/<agentId>/<db>`. Default "". */
  prefix?: string;
  /** Custom endpoint (MinIO, s3rver, …); omit for AWS. */
  endpoint?: string;
  /** Default "us-east-1". */
  region?: string;
  /** Path-style addressing. Default: true when `endpoint` is set. */
  forcePathStyle?: boolean;
  /** Given to the Litestream child only, through its environment (never written to a file). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** More environment for the Litestream child (e.g. AWS_* for the SDK chain, HOME for ~/.aws). */
  childEnv?: Record<string, string>;
}

export interface CompiledS3Settings {
  bucket: string;
  prefix: string;
  endpoint: string | undefined;
  region: string;
  forcePathStyle: boolean;
  credentials: { accessKeyId: string; secretAccessKey: string } | undefined;
  childEnv: Record<string, string>;
}

export interface ReplicationTimings {
  /** Litestream `sync-interval`: least time between two uploads of one database. Default 1000. */
  syncIntervalMs?: number;
  /** Litestream `monitor-interval`: how often it copies new WAL frames to its shadow WAL. Default 1000. */
  monitorIntervalMs?: number;
  /** How long Litestream keeps snapshots and WAL (point-in-time window). Default 24 h. */
  retentionMs?: number;
  /** How often retention is enforced (5 LISTs per database each time). Default = retentionMs. */
  retentionCheckIntervalMs?: number;
}

export interface CompiledTimings {
  syncIntervalMs: number;
  monitorIntervalMs: number;
  retentionMs: number;
  retentionCheckIntervalMs: number;
}

function positiveInt(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new ConnectError(`replication option ${name} must be a positive integer, got ${String(value)}`, Code.InvalidArgument);
  }
  return value;
}

export function compileS3Settings(s3: ReplicationS3Settings): CompiledS3Settings {
  if (typeof s3.bucket !== "string" || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(s3.bucket)) {
    throw new ConnectError(`replication bucket ${JSON.stringify(s3.bucket)} is not a valid S3 bucket name`, Code.InvalidArgument);
  }
  const prefix = s3.prefix ?? "";
  if (prefix.startsWith("/") || prefix.includes("..") || (prefix !== "" && !prefix.endsWith("/"))) {
    throw new ConnectError(`replication prefix must be relative and end with "/", got ${JSON.stringify(prefix)}`, Code.InvalidArgument);
  }
  return {
    bucket: s3.bucket,
    prefix,
    endpoint: s3.endpoint,
    region: s3.region ?? "us-east-1",
    forcePathStyle: s3.forcePathStyle ?? s3.endpoint !== undefined,
    credentials: s3.credentials,
    childEnv: { ...s3.childEnv },
  };
}

export function compileTimings(timings: ReplicationTimings): CompiledTimings {
  const retentionMs = positiveInt("retentionMs", timings.retentionMs, 24 * 3600_000);
  return {
    syncIntervalMs: positiveInt("syncIntervalMs", timings.syncIntervalMs, 1000),
    monitorIntervalMs: positiveInt("monitorIntervalMs", timings.monitorIntervalMs, 1000),
    retentionMs,
    retentionCheckIntervalMs: positiveInt("retentionCheckIntervalMs", timings.retentionCheckIntervalMs, retentionMs),
  };
}

/** The S3 key prefix of one database of an agent: `<prefix>agents/<agentId>/<db>`. */
export function replicaPath(s3: CompiledS3Settings, agentId: string, db: string): string {
  return `${s3.prefix}agents/${agentId}/${db}`;
}

/** The replica URL of one database (for logs and docs; Litestream gets the pieces from the config). */
export function replicaUrl(s3: CompiledS3Settings, agentId: string, db: string): string {
  return `s3://${s3.bucket}/${replicaPath(s3, agentId, db)}`;
}

/** The agent's database files, in AGENT_DATABASES order. */
export function agentDatabasePaths(agentDir: string): { name: AgentDatabase; path: string }[] {
  return AGENT_DATABASES.map((name) => ({ name, path: path.join(agentDir, name) }));
}
