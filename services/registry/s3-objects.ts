/** Small S3 object helpers for S3Registry: absent objects are `undefined`, failures are ConnectErrors (s3-errors). */
import { CreateBucketCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { isS3NotFound, s3ErrorName, toS3Error } from "./s3-errors.js";

export interface S3Location {
  client: S3Client;
  bucket: string;
}

export interface S3ObjectHead {
  size: number;
  metadata: Record<string, string>;
}

export async function getObjectBytes(s3: S3Location, key: string, what: string, signal?: AbortSignal): Promise<Buffer | undefined> {
  try {
    const res = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }), { abortSignal: signal });
    return res.Body ? Buffer.from(await res.Body.transformToByteArray()) : Buffer.alloc(0);
  } catch (error) {
    if (isS3NotFound(error)) return undefined;
    throw toS3Error(error, what, s3.bucket);
  }
}

export async function headObject(s3: S3Location, key: string, what: string, signal?: AbortSignal): Promise<S3ObjectHead | undefined> {
  try {
    const res = await s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }), { abortSignal: signal });
    return { size: res.ContentLength ?? 0, metadata: res.Metadata ?? {} };
  } catch (error) {
    if (isS3NotFound(error)) return undefined;
    throw toS3Error(error, what, s3.bucket);
  }
}

export async function putObject(
  s3: S3Location,
  key: string,
  body: Buffer | string,
  options: { contentType: string; metadata: Record<string, string>; what: string; signal?: AbortSignal | undefined },
): Promise<void> {
  try {
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: body, ContentType: options.contentType, Metadata: options.metadata }), { abortSignal: options.signal });
  } catch (error) {
    throw toS3Error(error, options.what, s3.bucket);
  }
}

/** Every key under `prefix` (all pages). */
export async function listKeys(s3: S3Location, prefix: string, what: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  try {
    do {
      const res = await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix, ContinuationToken: token }));
      for (const object of res.Contents ?? []) if (object.Key) keys.push(object.Key);
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
  } catch (error) {
    throw toS3Error(error, what, s3.bucket);
  }
  return keys;
}

/** Creates the bucket unless it exists. */
export async function ensureBucket(s3: S3Location): Promise<void> {
  try {
    await s3.client.send(new HeadBucketCommand({ Bucket: s3.bucket }));
    return;
  } catch (error) {
    if (!isS3NotFound(error) && s3ErrorName(error) !== "NoSuchBucket") throw toS3Error(error, "check bucket", s3.bucket);
  }
  try {
    await s3.client.send(new CreateBucketCommand({ Bucket: s3.bucket }));
  } catch (error) {
    const name = s3ErrorName(error);
    if (name === "BucketAlreadyOwnedByYou" || name === "BucketAlreadyExists") return;
    throw toS3Error(error, "create bucket", s3.bucket);
  }
}

/** Runs `work` over `items` with at most `limit` in flight; results in input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
