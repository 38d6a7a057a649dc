/**
 * The time span of each Litestream generation of one database, read from S3: the first and the last
 * object (snapshot or WAL segment) by LastModified, at S3's one-second resolution.
 *
 * Litestream's `restore -timestamp T` only picks a generation whose span holds T. An agent that wrote
 * nothing for a while has a generation that ended before T although it is still the agent's state at T
 * (nothing changed since its last upload), and an agent stopped at T left the previous generation as its
 * state until the next one began. `generationAt` finds that generation: the one that began last, at or
 * before T.
 */
import { ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";

export interface GenerationSpan {
  generation: string;
  start: Date;
  end: Date;
}

/** Every generation stored under `replicaPath` (one database's replica), oldest start first. */
export async function listGenerationSpans(client: S3Client, bucket: string, replicaPath: string, signal?: AbortSignal): Promise<GenerationSpan[]> {
  const prefix = `${replicaPath}/generations/`;
  const spans = new Map<string, GenerationSpan>();
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }), signal ? { abortSignal: signal } : {});
    for (const object of page.Contents ?? []) {
      const generation = object.Key?.slice(prefix.length).split("/")[0];
      const at = object.LastModified;
      if (!generation || !at) continue;
      const span = spans.get(generation);
      if (!span) spans.set(generation, { generation, start: at, end: at });
      else {
        if (at < span.start) span.start = at;
        if (at > span.end) span.end = at;
      }
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return [...spans.values()].sort((a, b) => a.start.getTime() - b.start.getTime());
}

/** The generation that holds the state at `at`: the last to begin at or before it (undefined: none had begun). */
export function generationAt(spans: readonly GenerationSpan[], at: Date): GenerationSpan | undefined {
  let found: GenerationSpan | undefined;
  for (const span of spans) if (span.start.getTime() <= at.getTime()) found = span;
  return found;
}
