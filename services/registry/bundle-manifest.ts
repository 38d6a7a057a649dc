/**
 * podium.json (the bundle manifest) and deployment ids.
 *
 * podium.json: {"name", "version", "runtime": "python" | "typescript", "entry", "network"?, "on_busy"?, "limits"?, "schedules"?}.
 * Unknown fields are ignored (forward compatibility); `limits` is checked by the coordinator, which
 * knows its maxima. Deployment id: "{name}:{version}@{registry}"; "{name}:{version}"
 * means the default registry. See docs/deployments.md.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { isJsonObject } from "../shared/json.js";
import { BUSY_POLICIES, DEFAULT_BUSY_POLICY, isBusyPolicy, type BusyPolicy } from "../shared/busy-policy.js";
import { parseDeclaredSchedules } from "../shared/schedule-when.js";

export type BundleRuntime = "python" | "typescript";

export interface BundleManifest {
  name: string;
  version: string;
  runtime: BundleRuntime;
  /** The entry file, relative to the bundle root, '/'-separated, without a leading "./". */
  entry: string;
  /** What the agent's processes may reach (docs/security.md); default "egress". */
  network: AgentNetworkPolicy;
  /** What a message sent while the agent is busy does (shared/busy-policy.ts); default "enqueue". */
  onBusy: BusyPolicy;
}

export type AgentNetworkPolicy = "none" | "egress" | "host";
export const NETWORK_POLICIES: readonly AgentNetworkPolicy[] = ["none", "egress", "host"];
export const DEFAULT_NETWORK_POLICY: AgentNetworkPolicy = "egress";

export const MANIFEST_FILE = "podium.json";
export const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;
export const VERSION_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;
/** Registry names follow the same grammar as bundle names. */
export const REGISTRY_PATTERN = NAME_PATTERN;
export const DEFAULT_REGISTRY = "local";

const ENTRY_EXTENSIONS: Record<BundleRuntime, readonly string[]> = {
  python: [".py"],
  typescript: [".ts", ".js", ".mjs"],
};
const MAX_ENTRY_LENGTH = 1024;

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}

function show(value: unknown): string {
  if (value === undefined) return "missing";
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/**
 * Validates a parsed podium.json. Throws ConnectError(InvalidArgument) naming the first bad field.
 * Does not check that the entry file exists; the archive code does that where the files are known.
 */
export function parseBundleManifest(json: unknown): BundleManifest {
  if (!isJsonObject(json)) throw invalid(`${MANIFEST_FILE} must be a JSON object (got ${show(json)})`);
  const { name, version, runtime, entry, network = DEFAULT_NETWORK_POLICY, on_busy: onBusy = DEFAULT_BUSY_POLICY } = json;
  if (typeof name !== "string" || !NAME_PATTERN.test(name)) {
    throw invalid(`${MANIFEST_FILE}: "name" must match ${NAME_PATTERN.source} (got ${show(name)})`);
  }
  if (typeof version !== "string" || !VERSION_PATTERN.test(version)) {
    throw invalid(`${MANIFEST_FILE}: "version" must match ${VERSION_PATTERN.source} (got ${show(version)})`);
  }
  if (runtime !== "python" && runtime !== "typescript") {
    throw invalid(`${MANIFEST_FILE}: "runtime" must be "python" or "typescript" (got ${show(runtime)})`);
  }
  if (typeof entry !== "string") {
    throw invalid(`${MANIFEST_FILE}: "entry" must be a string path relative to the bundle root (got ${show(entry)})`);
  }
  if (!NETWORK_POLICIES.includes(network as AgentNetworkPolicy)) {
    throw invalid(`${MANIFEST_FILE}: "network" must be one of ${NETWORK_POLICIES.map((p) => `"${p}"`).join(", ")} (got ${show(network)})`);
  }
  parseDeclaredSchedules(json.schedules);
  if (!isBusyPolicy(onBusy)) {
    throw invalid(`${MANIFEST_FILE}: "on_busy" must be one of ${BUSY_POLICIES.map((p) => `"${p}"`).join(", ")} (got ${show(onBusy)})`);
  }
  return { name, version, runtime, entry: normalizeEntry(entry, runtime), network: network as AgentNetworkPolicy, onBusy };
}

function normalizeEntry(entry: string, runtime: BundleRuntime): string {
  const bad = (why: string): ConnectError => invalid(`${MANIFEST_FILE}: "entry" ${why} (got ${show(entry)})`);
  if (entry.length === 0) throw bad("must not be empty");
  if (entry.length > MAX_ENTRY_LENGTH) throw bad(`must be at most ${MAX_ENTRY_LENGTH} characters`);
  if (entry.includes("\\") || entry.includes("\0")) throw bad("must use '/' separators and no NUL characters");
  if (entry.startsWith("/") || /^[A-Za-z]:/.test(entry)) throw bad("must be relative to the bundle root");
  const segments = entry.split("/").filter((s) => s !== "" && s !== ".");
  if (segments.includes("..")) throw bad("must not contain '..'");
  if (segments.length === 0) throw bad("must name a file");
  const normalized = segments.join("/");
  const allowed = ENTRY_EXTENSIONS[runtime];
  if (!allowed.some((ext) => normalized.endsWith(ext))) {
    throw bad(`must end with ${allowed.join(", ")} for runtime "${runtime}"`);
  }
  return normalized;
}

/** Throws InvalidArgument unless the manifest's entry is one of the bundle's regular files. */
export function checkEntryExists(manifest: BundleManifest, hasFile: (path: string) => boolean): void {
  if (!hasFile(manifest.entry)) {
    throw invalid(`${MANIFEST_FILE}: "entry" file ${show(manifest.entry)} is not in the bundle`);
  }
}

export interface DeploymentIdParts {
  name: string;
  version: string;
  registry: string;
}

/**
 * Parses "name:version@registry" (or "name:version", which means `defaultRegistry`, "local" unless
 * given). Throws ConnectError(InvalidArgument) for anything else.
 */
export function parseDeploymentId(id: string, defaultRegistry: string = DEFAULT_REGISTRY): DeploymentIdParts {
  const match = typeof id === "string" ? /^([^:@]*):([^:@]*)(?:@([^:@]*))?$/.exec(id) : null;
  if (!match) {
    throw invalid(`deployment id must look like "name:version@registry" or "name:version" (got ${show(id)})`);
  }
  const [, name = "", version = "", registry = defaultRegistry] = match;
  if (!NAME_PATTERN.test(name)) {
    throw invalid(`deployment id ${show(id)}: name must match ${NAME_PATTERN.source}`);
  }
  if (!VERSION_PATTERN.test(version)) {
    throw invalid(`deployment id ${show(id)}: version must match ${VERSION_PATTERN.source}`);
  }
  if (!REGISTRY_PATTERN.test(registry)) {
    throw invalid(`deployment id ${show(id)}: registry must match ${REGISTRY_PATTERN.source}`);
  }
  return { name, version, registry };
}

export function formatDeploymentId(parts: DeploymentIdParts): string {
  return `${parts.name}:${parts.version}@${parts.registry}`;
}
