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
