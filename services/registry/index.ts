/** Public API of the deployment registry: bundle format, archives, registries and the bundle cache. */
export {
  parseBundleManifest,
  parseDeploymentId,
  formatDeploymentId,
  MANIFEST_FILE,
  NAME_PATTERN,
  VERSION_PATTERN,
  REGISTRY_PATTERN,
  DEFAULT_REGISTRY,
} from "./bundle-manifest.js";
export type { BundleManifest, BundleRuntime, DeploymentIdParts } from "./bundle-manifest.js";
export { packBundle, extractBundle, bundleDigest, DEFAULT_MAX_FILES, DEFAULT_MAX_BYTES } from "./bundle-archive.js";
export type { PackOptions, ExtractLimits, ExtractedBundle } from "./bundle-archive.js";
export type { DeploymentRecord, DeploymentRegistry, UploadResult } from "./deployment-registry.js";
export { LocalRegistry } from "./local-registry.js";
export type { LocalRegistryOptions } from "./local-registry.js";
export { BundleCache } from "./bundle-cache.js";
export type { BundleCacheOptions } from "./bundle-cache.js";
export { deploymentToProto } from "./to-proto.js";
