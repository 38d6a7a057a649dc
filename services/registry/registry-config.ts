/**
 * The deployment registry from flags and environment, shared by `podium gateway` and `podium coordinator`
 * (docs/configuration.md): S3 when a bucket is named, otherwise a local directory.
 */
import path from "node:path";
import type { S3Client } from "@aws-sdk/client-s3";
import type { DeploymentRegistry } from "./deployment-registry.js";
import { LocalRegistry } from "./local-registry.js";
import { createS3Client } from "./s3-client.js";
import { S3Registry } from "./s3-registry.js";

/** The parseArgs options these settings read. */
export const REGISTRY_FLAGS = {
  registry: { type: "string" },
  "s3-bucket": { type: "string" },
  "s3-endpoint": { type: "string" },
  "s3-region": { type: "string" },
  "s3-prefix": { type: "string" },
} as const;

export type RegistryFlagValues = Partial<Record<keyof typeof REGISTRY_FLAGS, string>>;

/** The registry, and the S3 client behind it (the caller destroys it on shutdown). */
export function registryFromFlags(values: RegistryFlagValues, env: NodeJS.ProcessEnv, defaultLocalDir: string): { registry: DeploymentRegistry; s3Client: S3Client | undefined } {
  const bucket = values["s3-bucket"] ?? env.PODIUM_S3_BUCKET;
  if (!bucket) return { registry: new LocalRegistry({ dir: path.resolve(values.registry ?? env.PODIUM_REGISTRY_DIR ?? defaultLocalDir) }), s3Client: undefined };
  const s3Client = createS3Client({ endpoint: values["s3-endpoint"] ?? env.PODIUM_S3_ENDPOINT, region: values["s3-region"] ?? env.PODIUM_S3_REGION ?? env.AWS_REGION });
  return { registry: new S3Registry({ client: s3Client, bucket, prefix: values["s3-prefix"] ?? env.PODIUM_S3_PREFIX }), s3Client };
}
