/**
 * What an AgentInstance is made of and what it reports (agent-instance.ts): its options, status names,
 * exit, subscribers and the workspace capture it calls after each turn.
 */
import type { AgentProcess, AgentProcessHandle, AgentProcessHandlers, SandboxPids } from "./agent-process.js";
import type { InstanceLimits } from "./instance-limits.js";
import type { AgentRuntime } from "./runtime-commands.js";
import type { AgentStore } from "./store/agent-store.js";
import type { MessageRow } from "./store/message-log.js";
import type { Logger } from "../shared/logger.js";
import type { BusyPolicy } from "../shared/busy-policy.js";
import type { ScheduleFrame } from "./agent-protocol.js";
import type { JsonObject } from "../shared/json.js";

/** A turn's spans (turn-trace.ts), named here so the instance and its manager share one import. */
export { TurnTrace } from "./turn-trace.js";

export type InstanceStatusName = "starting" | "ready" | "busy" | "stopping" | "hibernated" | "terminated" | "failed";

/** What a capture recorded: undefined when nothing changed. */
export type CaptureOutcome = { iteration: number; files: { path: string; change: string }[]; quotaExceeded?: boolean } | undefined;

export interface WorkspaceCapture {
  capture(): CaptureOutcome;
  /**
   * capture() after a turn: the outcome itself when it needs no wait for the change-tracking thread (nothing
   * changed), else a promise of it whose wait does not block the event loop.
   */
  captureSoon?(): CaptureOutcome | Promise<CaptureOutcome>;
  /** Frees its database's page cache (an idle instance; best effort). */
  releaseMemory?(): void;
}

export interface InstanceExit {
  code: number | null;
  signal: string | null;
  reason: string;
}

/** What AgentInstance.send() recorded. */
export interface SentMessage {
  seq: number;
  turn: number;
  queuePosition: number;
  /** Turns this message cancelled (on_busy "interrupt"): the running one first, then the queued ones. */
  cancelledTurns: number[];
}

export interface UpdateSubscriber {
  onUpdate(row: MessageRow): void;
  /** The instance ended; no more updates will come. */
  onEnd(): void;
}

/**
 * What one process of an instance runs with: its launch (sandbox), its databases and workspace capture.
 * A hibernated instance has none; waking it opens new ones (AgentInstance.wake).
 */
export interface InstanceIncarnation {
  command: string;
  args: string[];
  workspace: string;
  /** The whole process environment of the agent's runner (the platform's variables only). */
  processEnv: Record<string, string>;
  /** Outer uid/gid of the process (sandbox/agent-uids.ts). */
  uid?: number;
  gid?: number;
  /** Sandbox set-up between bwrap's start and the agent's (cgroup, network); see AgentProcess. */
  prepare?: (pids: SandboxPids, signal: AbortSignal) => Promise<void>;
  /**
   * A warm runner spawned before this instance was asked for (runner-pool.ts), already sandboxed and set up:
   * used instead of spawning `command`. Its entry module comes with `init` (`entry`).
   */
  process?: AgentProcess;
  /** The entry module a warm runner loads (absolute path as the agent sees it). */
  entry?: string;
  /** Settles when the sandbox's set-up that may finish after the process started (egress) is done. */
  beforeInit?: Promise<void>;
  /** Why the platform's limits ended the process (read once it exited: out of memory). */
  exitReason?: () => string | undefined;
  /** CPU time of the agent's whole tree so far (its cgroup), when known: a start that timed out says it. */
  cpuUsageMicros?: () => number | undefined;
  store: AgentStore;
  workspaceCapture?: WorkspaceCapture;
}

/**
 * Makes the process of one start of an instance, its frames and output going to `handlers`; `step` names the
 * start's progress. The default (instance-factories.ts) claims the warm runner given, or spawns `command` sandboxed.
 */
export type AgentProcessFactory = (options: AgentInstanceOptions, handlers: AgentProcessHandlers, step: (what: string) => void) => AgentProcessHandle;

/** What an instance is across its processes. */
export interface InstanceIdentity {
  instanceId: string;
  agentId: string;
  deploymentId: string;
  runtime: AgentRuntime;
  /** environment + secrets: the runner puts them in its environment, inside the sandbox, and in ctx.env. */
  agentEnv: Record<string, string>;
  limits: InstanceLimits;
  /** What a message sent while the agent is busy does when it does not say (podium.json on_busy); default "enqueue". */
  onBusy?: BusyPolicy | undefined;
  /** Called each time the instance becomes idle (ready, nothing running or queued): hibernation timers. */
  onIdle?: (() => void) | undefined;
  /** Does what the agent's ctx.schedule / cancelSchedule / schedules asked; returns the answer's value. */
  onSchedule?: ((frame: ScheduleFrame) => JsonObject) | undefined;
  /** Called with the events the instance recorded, once stored (the coordinator's counts). */
  onRecorded?: ((rows: readonly MessageRow[]) => void) | undefined;
  logger: Logger;
  /**
   * Checked before every write to the agent's databases: false once this coordinator lost the agent's
   * single-writer lease (replication). The instance is then fenced: killed, nothing more written.
   */
  mayWrite?: (() => boolean) | undefined;
  /** Makes each process of the instance; default defaultProcessFactory (instance-factories.ts). */
  processFactory?: AgentProcessFactory | undefined;
}

export interface AgentInstanceOptions extends InstanceIdentity, InstanceIncarnation {}
