/**
 * An S3Client for the deployment registry, from the few settings `podium gateway` / `podium
 * coordinator` take. Credentials come from the AWS SDK's default chain (AWS_ACCESS_KEY_ID /
 * AWS_SECRET_ACCESS_KEY env, shared config, instance role); they are never passed through here.
 */
import { S3Client } from "@aws-sdk/client-s3";

export interface S3ClientSettings {
  /** Custom endpoint (MinIO, Ceph, s3rver, …); path-style addressing is used when set. */
  endpoint?: string;
  /** Default "us-east-1" (main.ts passes PODIUM_S3_REGION / AWS_REGION). */
  region?: string;
  /** Explicit credentials (tests); default: the SDK's credential chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Attempts per request (the SDK retries network errors, 5xx and throttling). Default 3. */
  maxAttempts?: number;
  /** TCP connect timeout, ms. Default 3000. */
  connectionTimeoutMs?: number;
  /** Socket idle timeout per request, ms. Default 30000. */
  requestTimeoutMs?: number;
}

export function createS3Client(settings: S3ClientSettings = {}): S3Client {
  return new S3Client({
    ...(settings.endpoint ? { endpoint: settings.endpoint, forcePathStyle: true } : {}),
    region: settings.region ?? "us-east-1",
    ...(settings.credentials ? { credentials: settings.credentials } : {}),
    maxAttempts: settings.maxAttempts ?? 3,
    // Many S3-compatible stores reject the SDK's default extra checksums; send them only when an API requires them.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    requestHandler: { connectionTimeout: settings.connectionTimeoutMs ?? 3000, requestTimeout: settings.requestTimeoutMs ?? 30_000 },
  });
}
