/** Per-instance limits. Coordinator options set defaults; a deployment's podium.json `limits` may lower or raise them. */
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
  /** Address-space limit for the agent process (bytes, 0 = none). */
  memoryBytes: number;
}

export const DEFAULT_INSTANCE_LIMITS: InstanceLimits = {
  startTimeoutMs: 15_000,
  maxTurnMs: 15 * 60_000,
  turnKillGraceMs: 5_000,
  maxMessageBytes: 1024 * 1024,
  maxQueuedMessages: 100,
  stopGraceMs: 5_000,
  memoryBytes: 0,
};

/** podium.json `limits` keys (snake_case, as in the manifest) -> InstanceLimits fields. */
const MANIFEST_LIMITS: Record<string, { field: keyof InstanceLimits; scale: number; max: number }> = {
  start_timeout_ms: { field: "startTimeoutMs", scale: 1, max: 10 * 60_000 },
  max_turn_ms: { field: "maxTurnMs", scale: 1, max: 24 * 3600_000 },
  max_message_bytes: { field: "maxMessageBytes", scale: 1, max: 64 * 1024 * 1024 },
  max_queued_messages: { field: "maxQueuedMessages", scale: 1, max: 100_000 },
  stop_grace_ms: { field: "stopGraceMs", scale: 1, max: 10 * 60_000 },
  memory_mb: { field: "memoryBytes", scale: 1024 * 1024, max: 1024 * 1024 },
};

/**
 * Applies a deployment's podium.json `limits` object over the coordinator's defaults.
 * Throws a message naming the bad key (the caller turns it into INVALID_ARGUMENT).
 */
export function applyManifestLimits(base: InstanceLimits, limits: unknown): InstanceLimits {
  if (limits === undefined || limits === null) return base;
  if (typeof limits !== "object" || Array.isArray(limits)) throw new Error('podium.json: "limits" must be an object');
  const out = { ...base };
  for (const [key, value] of Object.entries(limits as Record<string, unknown>)) {
    const spec = MANIFEST_LIMITS[key];
    if (!spec) throw new Error(`podium.json: unknown limit "${key}" (known: ${Object.keys(MANIFEST_LIMITS).join(", ")})`);
    if (typeof value !== "number" || !Number.isInteger(value) || value <= 0 || value > spec.max) {
      throw new Error(`podium.json: limits.${key} must be an integer from 1 to ${spec.max}`);
    }
    out[spec.field] = value * spec.scale;
  }
  return out;
}
