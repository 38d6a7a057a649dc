/**
 * What every registry backend does first with an uploaded archive: extract it into a throwaway
 * directory (which enforces the bundle rules: manifest, safe paths, size limits), then name it.
 */
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { ConnectError } from "@connectrpc/connect";
import { extractBundle } from "./bundle-extract.js";
import { formatDeploymentId, type BundleManifest } from "./bundle-manifest.js";
import { sha256 } from "./stored-record.js";

export interface CheckedUpload {
  manifest: BundleManifest;
  /** Content digest of the bundle's files (not of the archive bytes). */
  digest: string;
  deploymentId: string;
  /** sha256 of the archive as uploaded. */
  archiveSha256: string;
}

export async function checkUpload(
  archive: Buffer,
  options: { registry: string; scratchParent: string; limits: { maxFiles?: number; maxBytes?: number }; signal?: AbortSignal | undefined },
): Promise<CheckedUpload> {
  await fsp.mkdir(options.scratchParent, { recursive: true });
  const scratch = await fsp.mkdtemp(path.join(options.scratchParent, "podium-upload-"));
  let extracted;
  try {
    extracted = await extractBundle(archive, path.join(scratch, "bundle"), { ...options.limits, ...(options.signal ? { signal: options.signal } : {}) });
  } catch (error) {
    throw withoutScratchPath(error, scratch);
  } finally {
    await fsp.rm(scratch, { recursive: true, force: true });
  }
  const { manifest, digest } = extracted;
  return {
    manifest,
    digest,
    deploymentId: formatDeploymentId({ name: manifest.name, version: manifest.version, registry: options.registry }),
    archiveSha256: sha256(archive),
  };
}

/**
 * The uploader sees this error: it must not learn where the registry keeps its scratch space. Paths
 * inside the extracted bundle become bundle-relative, any other mention of the scratch directory "<upload>".
 */
function withoutScratchPath(error: unknown, scratch: string): unknown {
  if (!(error instanceof ConnectError) || !error.rawMessage.includes(scratch)) return error;
  const message = error.rawMessage
    .split(path.join(scratch, "bundle") + path.sep)
    .join("")
    .split(scratch)
    .join("<upload>");
  return new ConnectError(message, error.code, error.metadata, undefined, error.cause);
}
