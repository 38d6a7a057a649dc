/**
 * Per-instance limits. Coordinator options set defaults and maxima; a deployment's podium.json `limits`
 * may lower or raise them up to the maxima. Resource limits count the agent's whole process tree
 * (cgroup) where the coordinator can create cgroups; docs/security.md says what the fallback bounds.
 */
export interface InstanceLimits {
  /** Time from spawn to the agent's `ready` frame. */
  startTimeoutMs: number;
  /** A turn running longer is cancelled, and the process is killed `turnKillGraceMs` later. */
  maxTurnMs: number;
  turnKillGraceMs: number;
  /** Serialized size of one process_message content. */
  maxMessageBytes: number;
  /** Messages waiting behind the running turn. */
  maxQueuedMessages: number;
  /** Default grace period for onStop before SIGKILL. */
  stopGraceMs: number;
  /** Memory of the agent's whole process tree, bytes. */
  memoryBytes: number;
  /** Processes and threads of the agent's whole tree. */
  pids: number;
  /** Workspace + HOME + /tmp together, bytes (writes fail with ENOSPC past it). */
  diskBytes: number;
  /** Relative CPU share among agents (cgroup weight, 1-10000; 100 = one ordinary process). */
  cpuWeight: number;
  /** CPU time the agent may burn while no turn runs; past it the agent is killed. Reset at every turn. */
  idleCpuMs: number;
  /** An instance idle this long hibernates: its process ends, the instance stays (docs/runtime.md#hibernation). */
  hibernateAfterMs: number;
}

export const DEFAULT_INSTANCE_LIMITS: InstanceLimits = {
  startTimeoutMs: 15_000,
  maxTurnMs: 15 * 60_000,
  turnKillGraceMs: 5_000,
  maxMessageBytes: 1024 * 1024,
  maxQueuedMessages: 100,
  stopGraceMs: 5_000,
  memoryBytes: 1024 * 1024 * 1024,
  pids: 256,
  diskBytes: 2 * 1024 * 1024 * 1024,
  cpuWeight: 100,
  idleCpuMs: 10_000,
  hibernateAfterMs: 10 * 60_000,
};

const MIB = 1024 * 1024;

/** podium.json `limits` keys (snake_case, as in the manifest) -> InstanceLimits fields, with the default maxima. */
export const LIMIT_KEYS: Record<string, { field: keyof InstanceLimits; scale: number; max: number }> = {
  start_timeout_ms: { field: "startTimeoutMs", scale: 1, max: 10 * 60_000 },
  max_turn_ms: { field: "maxTurnMs", scale: 1, max: 24 * 3600_000 },
  max_message_bytes: { field: "maxMessageBytes", scale: 1, max: 64 * MIB },
  max_queued_messages: { field: "maxQueuedMessages", scale: 1, max: 100_000 },
  stop_grace_ms: { field: "stopGraceMs", scale: 1, max: 10 * 60_000 },
  memory_mb: { field: "memoryBytes", scale: MIB, max: 16 * 1024 },
  pids: { field: "pids", scale: 1, max: 4096 },
  disk_mb: { field: "diskBytes", scale: MIB, max: 64 * 1024 },
  cpu_weight: { field: "cpuWeight", scale: 1, max: 10_000 },
  idle_cpu_ms: { field: "idleCpuMs", scale: 1, max: 24 * 3600_000 },
  hibernate_after_ms: { field: "hibernateAfterMs", scale: 1, max: 7 * 24 * 3600_000 },
};

/** The default maxima a deployment may ask for (operators lower or raise them: `limitMaxima`). */
export const DEFAULT_LIMIT_MAXIMA: InstanceLimits = Object.fromEntries(Object.values(LIMIT_KEYS).map((spec) => [spec.field, spec.max * spec.scale])) as unknown as InstanceLimits;

/**
 * Parses operator settings "key=value" (podium.json units: memory_mb=2048, pids=512) into limits.
 * Throws a message naming the bad entry.
 */
export function parseLimitSettings(entries: string[], what: string): Partial<InstanceLimits> {
  const out: Partial<InstanceLimits> = {};
  for (const entry of entries
    .flatMap((e) => e.split(","))
    .map((e) => e.trim())
    .filter(Boolean)) {
    const [key = "", text = ""] = entry.split("=", 2);
    const spec = LIMIT_KEYS[key];
    const value = Number(text);
    if (!spec) throw new Error(`${what}: unknown limit "${key}" (known: ${Object.keys(LIMIT_KEYS).join(", ")})`);
    if (!/^\d+$/.test(text) || value <= 0) throw new Error(`${what}: ${key} must be a positive integer, got "${text}"`);
    out[spec.field] = value * spec.scale;
  }
  return out;
}

/**
 * Applies a deployment's podium.json `limits` object over the coordinator's defaults, within `maxima`.
 * Throws a message naming the bad key (the caller turns it into INVALID_ARGUMENT).
 */
export function applyManifestLimits(base: InstanceLimits, limits: unknown, maxima: InstanceLimits = DEFAULT_LIMIT_MAXIMA): InstanceLimits {
  if (limits === undefined || limits === null) return base;
  if (typeof limits !== "object" || Array.isArray(limits)) throw new Error('podium.json: "limits" must be an object');
  const out = { ...base };
  for (const [key, value] of Object.entries(limits as Record<string, unknown>)) {
    const spec = LIMIT_KEYS[key];
    if (!spec) throw new Error(`podium.json: unknown limit "${key}" (known: ${Object.keys(LIMIT_KEYS).join(", ")})`);
    const max = Math.floor(maxima[spec.field] / spec.scale);
    if (typeof value !== "number" || !Number.isInteger(value) || value <= 0 || value > max) {
      throw new Error(`podium.json: limits.${key} must be an integer from 1 to ${max} (this coordinator's maximum)`);
    }
    out[spec.field] = value * spec.scale;
  }
  return out;
}
