/**
 * The registry interface: where uploaded bundles live. `LocalRegistry` (a directory) implements it;
 * an S3 registry will implement the same interface. Semantics: docs/deployments.md.
 */
import { DEFAULT_REGISTRY, formatDeploymentId, parseDeploymentId, type BundleRuntime } from "./bundle-manifest.js";

export interface DeploymentRecord {
  /** "{name}:{version}@{registry}". */
  deploymentId: string;
  name: string;
  version: string;
  runtime: BundleRuntime;
  /** Entry file relative to the bundle root. */
  entry: string;
  /** "sha256:<hex>" content digest of the bundle's files (see bundleDigest). */
  digest: string;
  /** Size of the uploaded archive in bytes. */
  size: number;
  /** Epoch milliseconds of the upload that created this content. */
  createdAt: number;
  /** The registry that holds it ("local", "s3"). */
  registry: string;
}

export interface UploadResult {
  deployment: DeploymentRecord;
  /** False when name:version already held the same digest (nothing was written). */
  created: boolean;
}

export interface DeploymentRegistry {
  /** The registry's name, the part after '@' in deployment ids ("local"). */
  readonly name: string;
  /**
   * Validates and stores a bundle archive (.tar.gz). The same digest as the stored name:version is a
   * no-op (created: false); a different digest replaces it (created: true, new createdAt). A bad
   * archive throws ConnectError(InvalidArgument).
   */
  upload(archive: Buffer, signal?: AbortSignal): Promise<UploadResult>;
  /** "name:version@registry" or "name:version"; undefined when unknown or held by another registry. */
  get(deploymentId: string): Promise<DeploymentRecord | undefined>;
  /** All deployments, sorted by name then version (natural order: 1.9 before 1.10). */
  list(): Promise<DeploymentRecord[]>;
  /** The archive as uploaded. ConnectError(NotFound) when unknown. */
  readArchive(deploymentId: string, signal?: AbortSignal): Promise<Buffer>;
}

/** Natural order: digit runs compare as numbers, everything else by code unit. */
export function compareVersions(a: string, b: string): number {
  const split = (s: string): string[] => s.match(/\d+|\D+/g) ?? [];
  const pa = split(a);
  const pb = split(b);
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i] ?? "";
    const y = pb[i] ?? "";
    if (x === y) continue;
    const digits = /^\d/.test(x) && /^\d/.test(y);
    if (digits) {
      const diff = BigInt(x) - BigInt(y);
      if (diff !== 0n) return diff < 0n ? -1 : 1;
    }
    return x < y ? -1 : 1;
  }
  if (pa.length !== pb.length) return pa.length - pb.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

export function compareRecords(a: DeploymentRecord, b: DeploymentRecord): number {
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  return compareVersions(a.version, b.version) || (a.registry < b.registry ? -1 : a.registry > b.registry ? 1 : 0);
}

/**
 * The id under which `registryName` stores a deployment. "name:version" means the configured
 * registry, and so does "@local": clients (the seed's `{agentType}:1.0.0@local`) keep working when a
 * cluster's registry is S3. Any other registry name is kept, so lookups of it fail clearly.
 */
export function resolveDeploymentId(id: string, registryName: string): { id: string; foreign: boolean } {
  const parsed = parseDeploymentId(id, registryName);
  const registry = parsed.registry === DEFAULT_REGISTRY ? registryName : parsed.registry;
  return { id: formatDeploymentId({ ...parsed, registry }), foreign: registry !== registryName };
}
