/**
 * What one run of an agent needs before its process starts, for cold starts and warm runners alike:
 * its sandbox launch (uid, disk volume, cgroup, network), its databases and its versioned workspace.
 * Each step is synchronous work (files, SQLite, a worker thread): between them the event loop runs
 * heartbeats, probes and other agents' frames, however many starts are in flight.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { WorkspaceCapture } from "./agent-instance-options.js";
import type { AgentLaunch, AgentLaunchRequest, AgentSandboxes } from "./sandbox/agent-sandboxes.js";
import type { StoreTemplate } from "./store-template.js";
import { AgentStore } from "./store/agent-store.js";

/** Opens the versioned workspace of an agent (Chronicle); optional so the coordinator runs without it. */
export type WorkspaceFactory = (agentDir: string, workspace: string) => (WorkspaceCapture & { close(): void }) | undefined;

export interface OpenAgentDeps {
  sandboxes: AgentSandboxes;
  storeTemplate: StoreTemplate;
  workspaces?: WorkspaceFactory;
  /** PATH given to agent processes. */
  agentPath: string;
}

export interface OpenAgentRequest extends AgentLaunchRequest {
  /** Absent for a warm runner: its runner sets PODIUM_DEPLOYMENT_ID from `init`. */
  deploymentId?: string;
}

export interface OpenedAgent {
  launch: AgentLaunch;
  store: AgentStore;
  workspaceCapture: ReturnType<WorkspaceFactory>;
  /** The runner's whole process environment (the platform's variables only). */
  processEnv: Record<string, string>;
}

export async function openAgent(deps: OpenAgentDeps, request: OpenAgentRequest): Promise<OpenedAgent> {
  const { agentDir, signal } = request;
  throwIfCancelled(signal);
  // Workspace and HOME (outside the versioned workspace, so tool caches do not become history):
  // owned by the agent's uid, on its quota-limited disk (what was restored is moved onto it).
  const { deploymentId, ...launchRequest } = request;
  const launch = await deps.sandboxes.launch(launchRequest);
  const { workspace, home } = launch;
  let store: AgentStore | undefined;
  let workspaceCapture: ReturnType<WorkspaceFactory>;
  try {
    await deps.storeTemplate.seed(agentDir);
    store = AgentStore.open({ dir: agentDir });
    await yieldToEventLoop();
    throwIfCancelled(signal);
    workspaceCapture = deps.workspaces?.(agentDir, workspace);
    await yieldToEventLoop();
    throwIfCancelled(signal);
  } catch (err) {
    workspaceCapture?.close();
    store?.close();
    await launch.release();
    throw err;
  }
  const processEnv: Record<string, string> = {
    PATH: deps.agentPath,
    HOME: home,
    TMPDIR: "/tmp",
    LANG: "C.UTF-8",
    PYTHONUNBUFFERED: "1",
    PYTHONDONTWRITEBYTECODE: "1",
    PODIUM_INSTANCE_ID: request.instanceId,
    PODIUM_AGENT_ID: request.agentId,
    ...(deploymentId ? { PODIUM_DEPLOYMENT_ID: deploymentId } : {}),
    PODIUM_WORKSPACE: workspace,
  };
  return { launch, store, workspaceCapture, processEnv };
}

/** Lets pending I/O (heartbeat replies, probes, agents' frames) run before the next piece of synchronous work. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export function throwIfCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new ConnectError("instance creation was cancelled", Code.Canceled);
}
