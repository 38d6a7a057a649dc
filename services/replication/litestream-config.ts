/**
 * The Litestream v0.3.13 binary (npm package @flydotio/litestream-linux-x64), the YAML config the
 * supervisor and restore generate for it, and the environment its child gets. Credentials only
 * ever travel in the child's environment (LITESTREAM_ACCESS_KEY_ID / LITESTREAM_SECRET_ACCESS_KEY),
 * never in the config file.
 */
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import type { CompiledS3Settings, CompiledTimings } from "./replication-options.js";

const require = createRequire(import.meta.url);

/** Path of the bundled Litestream binary; throws FailedPrecondition when the package is missing. */
export function litestreamBinary(): string {
  let dir: string;
  try {
    dir = path.dirname(require.resolve("@flydotio/litestream-linux-x64/package.json"));
  } catch {
    throw new ConnectError("litestream is not installed (npm package @flydotio/litestream-linux-x64, Linux x64 only)", Code.FailedPrecondition);
  }
  const binary = path.join(dir, "litestream");
  if (!fs.existsSync(binary)) throw new ConnectError(`litestream binary missing at ${binary}`, Code.FailedPrecondition);
  return binary;
}

export interface LitestreamDatabase {
  /** Absolute path of the SQLite file. */
  path: string;
  /** S3 key prefix of its replica (`<prefix>agents/<agentId>/<db>`). */
  replicaPath: string;
}

/** Go duration text ("1500ms"). */
function duration(ms: number): string {
  return `${Math.round(ms)}ms`;
}

/** A YAML scalar: JSON strings are valid YAML and leave no room for injection through paths. */
function str(value: string): string {
  return JSON.stringify(value);
}

function replicaLines(s3: CompiledS3Settings, replicaPathValue: string, timings: CompiledTimings | undefined, indent: string): string[] {
  const lines = [`${indent}- type: s3`, `${indent}  bucket: ${str(s3.bucket)}`, `${indent}  path: ${str(replicaPathValue)}`, `${indent}  region: ${str(s3.region)}`];
  if (s3.endpoint) lines.push(`${indent}  endpoint: ${str(s3.endpoint)}`);
  if (s3.forcePathStyle) lines.push(`${indent}  force-path-style: true`);
  if (timings) {
    lines.push(
      `${indent}  sync-interval: ${duration(timings.syncIntervalMs)}`,
      `${indent}  retention: ${duration(timings.retentionMs)}`,
      `${indent}  retention-check-interval: ${duration(timings.retentionCheckIntervalMs)}`,
    );
  }
  return lines;
}

/**
 * Config for `litestream replicate`: debug-level JSON logs on stdout (the supervisor reads replica
 * positions from them), no metrics listener, one replica per database.
 */
export function renderReplicateConfig(dbs: readonly LitestreamDatabase[], s3: CompiledS3Settings, timings: CompiledTimings): string {
  const lines = ["logging:", "  level: debug", "  type: json", "dbs:"];
  for (const db of dbs) {
    lines.push(`  - path: ${str(db.path)}`, `    monitor-interval: ${duration(timings.monitorIntervalMs)}`, "    replicas:");
    lines.push(...replicaLines(s3, db.replicaPath, timings, "      "));
  }
  return lines.join("\n") + "\n";
}

/** Config for `litestream restore`: the database entry names the replica to read. */
export function renderRestoreConfig(db: LitestreamDatabase, s3: CompiledS3Settings): string {
  const lines = ["dbs:", `  - path: ${str(db.path)}`, "    replicas:", ...replicaLines(s3, db.replicaPath, undefined, "      ")];
  return lines.join("\n") + "\n";
}

/** The Litestream child's whole environment: credentials plus `childEnv`, nothing inherited. */
export function litestreamEnv(s3: CompiledS3Settings): Record<string, string> {
  return {
    ...s3.childEnv,
    ...(s3.credentials ? { LITESTREAM_ACCESS_KEY_ID: s3.credentials.accessKeyId, LITESTREAM_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey } : {}),
  };
}

/** A Litestream position "<generation>/<index hex>:<offset>". */
export interface LitestreamPosition {
  generation: string;
  index: number;
  offset: number;
}

export function parsePosition(text: unknown): LitestreamPosition | undefined {
  if (typeof text !== "string") return undefined;
  const match = /^([0-9a-f]{16})\/([0-9a-f]{8}):(\d+)$/.exec(text);
  if (!match) return undefined;
  return { generation: match[1] as string, index: parseInt(match[2] as string, 16), offset: Number(match[3]) };
}

export function formatPosition(position: LitestreamPosition): string {
  return `${position.generation}/${position.index.toString(16).padStart(8, "0")}:${position.offset}`;
}
