/**
 * One process's worth of an agent (an "incarnation" of its instance): the agent's lease (with replication:
 * restored from S3 when this host has no current copy), its sandbox launch and its databases, opened for a
 * create or a wake; and what AgentInstance runs with, built from them.
 */
import fs from "node:fs";
import path from "node:path";
import type { AgentProcess } from "./agent-process.js";
import type { InstanceIncarnation } from "./agent-instance-options.js";
import type { InstanceLimits } from "./instance-limits.js";
import type { OpenedAgent } from "./open-agent.js";
import type { AgentStoreFactory } from "./instance-factories.js";
import { agentCommand, runtimeReadOnlyPaths, type RuntimeCommands } from "./runtime-commands.js";
import { discardWarmRunner, type WarmAgent, type WarmRunnerDeps } from "./warm-runner.js";
import type { AgentNetworkPolicy } from "../registry/bundle-manifest.js";
import type { DeploymentRecord } from "../registry/deployment-registry.js";
import type { AgentReplication } from "../replication/agent-replication.js";

export interface IncarnationDeps {
  warm: WarmRunnerDeps;
  commands: RuntimeCommands;
  /** Opens the sandbox launch, databases and workspace (instance-factories.ts: openAgent unless a test's). */
  open: AgentStoreFactory;
  replication?: AgentReplication;
}

export interface IncarnationRequest {
  deployment: DeploymentRecord;
  bundleDir: string;
  agentId: string;
  instanceId: string;
  limits: InstanceLimits;
  network: AgentNetworkPolicy;
  /** A warm runner claimed for a new agent: used as it is. */
  warm?: WarmAgent | undefined;
  /** A new agent (no restore is attempted). */
  fresh: boolean;
  signal?: AbortSignal | undefined;
}

/** Takes the agent's lease (restoring it when needed) and opens its sandbox and databases, or uses `warm`'s. */
export async function openIncarnation(deps: IncarnationDeps, request: IncarnationRequest): Promise<OpenedAgent> {
  const { deployment, bundleDir, agentId, warm, signal } = request;
  const agentDir = deps.warm.agentDir(agentId);
  const { replication } = deps;
  try {
    if (replication) await replication.prepare(agentId, agentDir, signal, { fresh: request.fresh });
  } catch (err) {
    if (warm) await discardWarmRunner(deps.warm, warm);
    throw err;
  }
  if (warm) return warm;
  // A warm runner's copy of its bundle, left by a coordinator killed while the agent ran (a cold start reads the bundle cache).
  fs.rmSync(path.join(agentDir, "bundle"), { recursive: true, force: true });
  const [runner, runnerArgs] = agentCommand(deps.commands, deployment.runtime, path.join(bundleDir, deployment.entry));
  try {
    return await deps.open({
      agentId,
      instanceId: request.instanceId,
      deploymentId: deployment.deploymentId,
      agentDir,
      command: runner,
      args: runnerArgs,
      readOnly: [...runtimeReadOnlyPaths(deps.commands, deployment.runtime), bundleDir],
      limits: request.limits,
      network: request.network,
      ...(signal ? { signal } : {}),
    });
  } catch (err) {
    await replication?.release(agentId);
    throw err;
  }
}

/** What one process of an instance runs with, from the sandbox and databases opened for it. */
export function incarnationOf(opened: OpenedAgent, warm?: { process: AgentProcess; entry: string }): InstanceIncarnation {
  const { launch } = opened;
  return {
    command: launch.command,
    args: launch.args,
    ...(launch.uid !== undefined ? { uid: launch.uid } : {}),
    ...(launch.gid !== undefined ? { gid: launch.gid } : {}),
    ...(launch.prepare ? { prepare: launch.prepare } : {}),
    ...(launch.beforeInit ? { beforeInit: launch.beforeInit } : {}),
    ...(warm ? { process: warm.process, entry: warm.entry } : {}),
    exitReason: launch.exitReason,
    cpuUsageMicros: () => launch.cpuUsageMicros(),
    workspace: launch.workspace,
    processEnv: opened.processEnv,
    store: opened.store,
    ...(opened.workspaceCapture ? { workspaceCapture: opened.workspaceCapture } : {}),
  };
}
