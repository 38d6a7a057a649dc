/**
 * `<prefix>agents/<agentId>/generations.json`: which Litestream generation of each database is the
 * current one. Litestream v0.3 starts a new generation whenever it cannot continue the old one (the
 * agent was stopped and its WAL checkpointed, Litestream was killed at the wrong moment, a restore on
 * another host) and, when restoring "the latest", picks the generation with the newest object in S3.
 * S3 timestamps have one-second resolution, so two generations touched in the same second tie and
 * Litestream takes whichever lists first: an agent restarted within a second could come back as its
 * older self. The replicating coordinator therefore records the generation it writes (after that
 * generation's first upload) and restores of "the latest" pass it as `-generation`. Litestream only
 * lists `<path>/generations/`, so this object beside the replicas does not disturb it.
 */
import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { errorMessage } from "../shared/errors.js";
import type { CompiledS3Settings } from "./replication-options.js";

export interface GenerationMarker {
  /** Database file name -> generation id. */
  generations: Record<string, string>;
  coordinatorId: string;
  updatedAt: number;
  /** Written when the agent was released after a complete final sync: where each replica ends. */
  positions?: Record<string, string>;
  /** Epoch ms of the last upload Litestream reported before the release. */
  lastSyncAt?: number;
}

export function markerKey(s3: CompiledS3Settings, agentId: string): string {
  return `${s3.prefix}agents/${agentId}/generations.json`;
}

export function createReplicationS3Client(s3: CompiledS3Settings): S3Client {
  return new S3Client({
    ...(s3.endpoint ? { endpoint: s3.endpoint } : {}),
    forcePathStyle: s3.forcePathStyle,
    region: s3.region,
    ...(s3.credentials ? { credentials: s3.credentials } : {}),
    maxAttempts: 3,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    requestHandler: { connectionTimeout: 3000, requestTimeout: 10_000 },
  });
}

function isNotFound(err: unknown): boolean {
  if (typeof err !== "object" || err === null) return false;
  const { name, $metadata } = err as { name?: unknown; $metadata?: { httpStatusCode?: unknown } };
  return name === "NoSuchKey" || name === "NotFound" || $metadata?.httpStatusCode === 404;
}

function parseMarker(text: string): GenerationMarker | undefined {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== "object" || value === null) return undefined;
    const { generations, coordinatorId, updatedAt, positions, lastSyncAt } = value as Record<string, unknown>;
    if (typeof generations !== "object" || generations === null) return undefined;
    const clean: Record<string, string> = {};
    for (const [db, generation] of Object.entries(generations)) {
      if (typeof generation === "string" && /^[0-9a-f]{16}$/.test(generation)) clean[db] = generation;
    }
    const cleanPositions: Record<string, string> = {};
    for (const [db, position] of Object.entries(typeof positions === "object" && positions !== null ? positions : {})) {
      if (typeof position === "string" && /^[0-9a-f]{16}\/[0-9a-f]+:\d+$/.test(position)) cleanPositions[db] = position;
    }
    return {
      generations: clean,
      coordinatorId: typeof coordinatorId === "string" ? coordinatorId : "",
      updatedAt: typeof updatedAt === "number" ? updatedAt : 0,
      ...(Object.keys(cleanPositions).length > 0 ? { positions: cleanPositions } : {}),
      ...(typeof lastSyncAt === "number" && Number.isFinite(lastSyncAt) ? { lastSyncAt } : {}),
    };
  } catch {
    return undefined;
  }
}

/** The marker, or undefined when there is none (or it cannot be read: restore then lets Litestream choose). */
export async function readGenerationMarker(client: S3Client, s3: CompiledS3Settings, agentId: string, signal?: AbortSignal): Promise<GenerationMarker | undefined> {
  try {
    const answer = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: markerKey(s3, agentId) }), signal ? { abortSignal: signal } : {});
    const text = await answer.Body?.transformToString("utf8");
    return text === undefined ? undefined : parseMarker(text);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw new Error(`cannot read ${markerKey(s3, agentId)}: ${errorMessage(err)}`);
  }
}

export async function writeGenerationMarker(client: S3Client, s3: CompiledS3Settings, agentId: string, marker: GenerationMarker): Promise<void> {
  await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: markerKey(s3, agentId), Body: JSON.stringify(marker), ContentType: "application/json" }));
}
