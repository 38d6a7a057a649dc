/**
 * A deployment registry in an S3 bucket (any S3 API: AWS, MinIO, Ceph, s3rver in tests):
 *
 *   <prefix><name>/<version>/bundle.tar.gz     the archive as uploaded   (metadata: digest, archive-sha256)
 *   <prefix><name>/<version>/deployment.json   the DeploymentRecord + the archive's sha256 (metadata: digest)
 *
 * Uploads are validated and digested exactly like LocalRegistry (extracted into a temp dir that is
 * removed afterwards). The archive is written before the record and the record carries the archive's
 * sha256, so a crash between the two PUTs (or two gateways uploading different content for one
 * name:version at once) is detected by readArchive (DataLoss) and healed by the next upload. Uploading
 * the same content again writes nothing. Errors: S3 unreachable -> Unavailable; missing bucket or
 * denied access -> FailedPrecondition; unknown deployment -> undefined / NotFound.
 */
import * as os from "node:os";
import type { S3Client } from "@aws-sdk/client-s3";
import { Code, ConnectError } from "@connectrpc/connect";
import { newRecord, parseStored, sha256, toPublic, type StoredRecord } from "./stored-record.js";
import { checkUpload } from "./checked-upload.js";
import { NAME_PATTERN, REGISTRY_PATTERN, VERSION_PATTERN, formatDeploymentId, parseDeploymentId } from "./bundle-manifest.js";
import { throwIfAborted } from "./cancel.js";
import { compareRecords, type DeploymentRecord, type DeploymentRegistry, type UploadResult } from "./deployment-registry.js";
import { KeyedMutex } from "./keyed-mutex.js";
import { ensureBucket, getObjectBytes, headObject, listKeys, mapLimit, putObject, type S3Location } from "./s3-objects.js";

export const S3_ARCHIVE_OBJECT = "bundle.tar.gz";
export const S3_RECORD_OBJECT = "deployment.json";

export interface S3RegistryOptions {
  client: S3Client;
  bucket: string;
  /** Key prefix of every object. Default "deployments/". */
  prefix?: string;
  /** Registry name used in deployment ids. Default "s3". */
  name?: string;
  /** Create the bucket on first upload if it does not exist. Default false. */
  createBucket?: boolean;
  /** Extraction limits applied to uploads (defaults: 10,000 entries, 512 MiB). */
  limits?: { maxFiles?: number; maxBytes?: number };
  /** Where uploads are extracted for validation. Default os.tmpdir(). */
  scratchDir?: string;
}

export class S3Registry implements DeploymentRegistry {
  readonly name: string;
  readonly bucket: string;
  readonly prefix: string;
  private readonly s3: S3Location;
  private readonly createBucket: boolean;
  private readonly limits: { maxFiles?: number; maxBytes?: number };
  private readonly scratchDir: string;
  private readonly locks = new KeyedMutex();
  private bucketReady: Promise<void> | undefined;

  constructor(options: S3RegistryOptions) {
    const name = options.name ?? "s3";
    if (!REGISTRY_PATTERN.test(name)) throw new RangeError(`registry name must match ${REGISTRY_PATTERN.source}`);
    if (!options.bucket) throw new RangeError("bucket is required");
    this.name = name;
    this.bucket = options.bucket;
    this.prefix = options.prefix ?? "deployments/";
    this.s3 = { client: options.client, bucket: options.bucket };
    this.createBucket = options.createBucket ?? false;
    this.limits = options.limits ?? {};
    this.scratchDir = options.scratchDir ?? os.tmpdir();
  }

  async upload(archive: Buffer, signal?: AbortSignal): Promise<UploadResult> {
    throwIfAborted(signal, "upload");
    const { manifest, digest, deploymentId, archiveSha256 } = await checkUpload(archive, { registry: this.name, scratchParent: this.scratchDir, limits: this.limits, signal });
    return this.locks.run(deploymentId, async () => {
      throwIfAborted(signal, "upload");
      await this.ensureBucket();
      const existing = await this.readStored(manifest.name, manifest.version, deploymentId, signal);
      if (existing && existing.digest === digest && (await this.archiveIntact(existing, signal))) {
        return { deployment: toPublic(existing), created: false };
      }
      const record = newRecord({ deploymentId, manifest, digest, size: archive.length, registry: this.name, replaces: existing });
      const what = `upload ${deploymentId}`;
      await putObject(this.s3, this.key(manifest.name, manifest.version, S3_ARCHIVE_OBJECT), archive, {
        contentType: "application/gzip",
        metadata: { digest, "archive-sha256": archiveSha256 },
        what,
        signal,
      });
      const stored: StoredRecord = { ...record, archiveSha256 };
      await putObject(this.s3, this.key(manifest.name, manifest.version, S3_RECORD_OBJECT), `${JSON.stringify(stored, null, 2)}\n`, {
        contentType: "application/json",
        metadata: { digest },
        what,
        signal,
      });
      return { deployment: record, created: true };
    });
  }

  async get(deploymentId: string): Promise<DeploymentRecord | undefined> {
    const { name, version, registry } = parseDeploymentId(deploymentId, this.name);
    if (registry !== this.name) return undefined;
    const stored = await this.readStored(name, version, formatDeploymentId({ name, version, registry }));
    return stored && toPublic(stored);
  }

  async list(): Promise<DeploymentRecord[]> {
    const keys = await listKeys(this.s3, this.prefix, "list deployments");
    const found: { name: string; version: string }[] = [];
    for (const key of keys) {
      const parts = key.slice(this.prefix.length).split("/");
      const [name = "", version = "", file] = parts;
      if (parts.length === 3 && file === S3_RECORD_OBJECT && NAME_PATTERN.test(name) && VERSION_PATTERN.test(version)) found.push({ name, version });
    }
    const records = await mapLimit(found, 8, ({ name, version }) => this.readStored(name, version, formatDeploymentId({ name, version, registry: this.name })));
    return records
      .filter((r): r is StoredRecord => r !== undefined)
      .map(toPublic)
      .sort(compareRecords);
  }

  async readArchive(deploymentId: string, signal?: AbortSignal): Promise<Buffer> {
    const { name, version, registry } = parseDeploymentId(deploymentId, this.name);
    const id = formatDeploymentId({ name, version, registry });
    if (registry !== this.name) throw new ConnectError(`deployment ${id} is not in registry "${this.name}"`, Code.NotFound);
    throwIfAborted(signal, "read archive");
    const stored = await this.readStored(name, version, id, signal);
    if (!stored) throw new ConnectError(`unknown deployment ${id}`, Code.NotFound);
    const archive = await getObjectBytes(this.s3, this.key(name, version, S3_ARCHIVE_OBJECT), `read archive of ${id}`, signal);
    if (!archive) throw new ConnectError(`deployment ${id}: ${S3_ARCHIVE_OBJECT} is missing from bucket "${this.bucket}"`, Code.DataLoss);
    if (sha256(archive) !== stored.archiveSha256) {
      throw new ConnectError(`deployment ${id}: ${S3_ARCHIVE_OBJECT} does not match its record (interrupted or concurrent upload?); upload it again`, Code.DataLoss);
    }
    return archive;
  }

  private key(name: string, version: string, file: string): string {
    return `${this.prefix}${name}/${version}/${file}`;
  }

  private ensureBucket(): Promise<void> {
    if (!this.createBucket) return Promise.resolve();
    this.bucketReady ??= ensureBucket(this.s3).catch((error: unknown) => {
      this.bucketReady = undefined;
      throw error;
    });
    return this.bucketReady;
  }

  private async readStored(name: string, version: string, id: string, signal?: AbortSignal): Promise<StoredRecord | undefined> {
    const bytes = await getObjectBytes(this.s3, this.key(name, version, S3_RECORD_OBJECT), `read ${id}`, signal);
    if (!bytes) return undefined;
    let stored: StoredRecord | undefined;
    try {
      stored = parseStored(JSON.parse(bytes.toString("utf8")));
    } catch {
      stored = undefined;
    }
    if (!stored) throw new ConnectError(`deployment ${id}: ${S3_RECORD_OBJECT} is corrupt`, Code.DataLoss);
    return stored;
  }

  private async archiveIntact(stored: StoredRecord, signal?: AbortSignal): Promise<boolean> {
    const head = await headObject(this.s3, this.key(stored.name, stored.version, S3_ARCHIVE_OBJECT), `check ${stored.deploymentId}`, signal);
    return head !== undefined && head.size === stored.size && head.metadata["archive-sha256"] === stored.archiveSha256;
  }
}
