/**
 * The record a registry stores next to each archive: the public DeploymentRecord plus the archive's
 * own sha256, so a record and an archive from different uploads are detected (DataLoss, healed by
 * uploading again). Shared by every registry backend.
 */
import { createHash } from "node:crypto";
import { isJsonObject } from "../shared/json.js";
import type { BundleManifest } from "./bundle-manifest.js";
import type { DeploymentRecord } from "./deployment-registry.js";

export interface StoredRecord extends DeploymentRecord {
  /** sha256 hex of bundle.tar.gz, to detect a record and an archive from different uploads. */
  archiveSha256: string;
}

export function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

const isString = (value: unknown): value is string => typeof value === "string";

export function parseStored(json: unknown): StoredRecord | undefined {
  if (!isJsonObject(json)) return undefined;
  const { deploymentId, name, version, runtime, entry, digest, size, createdAt, registry, archiveSha256 } = json;
  if (!isString(deploymentId) || !isString(name) || !isString(version) || !isString(entry)) return undefined;
  if (!isString(digest) || !isString(registry) || !isString(archiveSha256)) return undefined;
  if (runtime !== "python" && runtime !== "typescript") return undefined;
  if (typeof size !== "number" || typeof createdAt !== "number") return undefined;
  return { deploymentId, name, version, runtime, entry, digest, size, createdAt, registry, archiveSha256 };
}

export function toPublic(stored: StoredRecord): DeploymentRecord {
  const { archiveSha256: _omit, ...record } = stored;
  return record;
}

/** The record of a new upload; its createdAt is strictly newer than the record it replaces. */
export function newRecord(upload: { deploymentId: string; manifest: BundleManifest; digest: string; size: number; registry: string; replaces: DeploymentRecord | undefined }): DeploymentRecord {
  const { manifest, replaces } = upload;
  return {
    deploymentId: upload.deploymentId,
    name: manifest.name,
    version: manifest.version,
    runtime: manifest.runtime,
    entry: manifest.entry,
    digest: upload.digest,
    size: upload.size,
    // strictly newer than what it replaces, even within the same millisecond
    createdAt: Math.max(Date.now(), replaces ? replaces.createdAt + 1 : 0),
    registry: upload.registry,
  };
}
