/**
 * Replication settings from flags and environment, shared by `podium coordinator` and `podium dev`
 * (docs/configuration.md). Replication is on when a bucket is named.
 */
import type { CoordinatorReplicationOptions } from "./create-coordinator.js";

/** The parseArgs options these settings read. */
export const REPLICATION_FLAGS = {
  "replicate-bucket": { type: "string" },
  "replicate-prefix": { type: "string" },
  "replicate-endpoint": { type: "string" },
  "replicate-region": { type: "string" },
  "replicate-sync-interval-ms": { type: "string" },
} as const;

export type ReplicationFlagValues = Partial<Record<keyof typeof REPLICATION_FLAGS, string>>;

/** Environment the Litestream child may need for the AWS credential chain (never logged or written). */
const CHILD_ENV = ["AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "HOME"] as const;

/** The first value that is set and not empty (compose files often set `VAR=` for "unset"). */
function pick(...values: (string | undefined)[]): string | undefined {
  return values.find((v) => v !== undefined && v.trim() !== "");
}

export function replicationFromFlags(values: ReplicationFlagValues, env: NodeJS.ProcessEnv): CoordinatorReplicationOptions | undefined {
  const bucket = pick(values["replicate-bucket"], env.PODIUM_REPLICATION_BUCKET);
  if (!bucket) return undefined;
  let prefix = pick(values["replicate-prefix"], env.PODIUM_REPLICATION_PREFIX) ?? "";
  if (prefix && !prefix.endsWith("/")) prefix += "/";
  const endpoint = pick(values["replicate-endpoint"], env.PODIUM_REPLICATION_ENDPOINT, env.PODIUM_S3_ENDPOINT);
  const region = pick(values["replicate-region"], env.PODIUM_REPLICATION_REGION, env.PODIUM_S3_REGION, env.AWS_REGION);
  const fromFlag = pick(values["replicate-sync-interval-ms"]);
  const syncText = fromFlag ?? pick(env.PODIUM_REPLICATION_SYNC_INTERVAL_MS);
  const syncIntervalMs = syncText === undefined ? undefined : Number(syncText.trim());
  if (syncText !== undefined && (!/^\d+$/.test(syncText.trim()) || !Number.isSafeInteger(syncIntervalMs) || syncIntervalMs === 0)) {
    const source = fromFlag !== undefined ? "--replicate-sync-interval-ms" : "PODIUM_REPLICATION_SYNC_INTERVAL_MS";
    throw new Error(`${source} must be a positive integer (milliseconds), got ${JSON.stringify(syncText)}`);
  }
  const childEnv: Record<string, string> = {};
  for (const name of CHILD_ENV) {
    const value = env[name];
    if (value) childEnv[name] = value;
  }
  const accessKeyId = env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
  return {
    s3: {
      bucket,
      prefix,
      ...(endpoint ? { endpoint } : {}),
      ...(region ? { region } : {}),
      ...(accessKeyId && secretAccessKey ? { credentials: { accessKeyId, secretAccessKey } } : {}),
      childEnv,
    },
    ...(syncIntervalMs !== undefined ? { syncIntervalMs } : {}),
  };
}
