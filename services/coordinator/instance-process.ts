/**
 * The process an AgentInstance runs and the `init` frame it sends it: the warm runner it was given, or a
 * new sandboxed spawn of its runtime's runner.
 */
import { AgentProcess, type AgentProcessHandlers, type SandboxPids } from "./agent-process.js";
import type { AgentInstanceOptions } from "./agent-instance-options.js";
import { AGENT_PROTOCOL_VERSION, type HostToAgent } from "./agent-protocol.js";
import type { JsonObject } from "../shared/json.js";

/** `step` names the start's progress (quoted in start-up errors). */
export function instanceProcess(options: AgentInstanceOptions, handlers: AgentProcessHandlers, step: (what: string) => void): AgentProcess {
  if (options.process) {
    const attached = options.process.attach(handlers);
    step("warm runner claimed");
    return attached;
  }
  const { prepare } = options;
  return new AgentProcess({
    command: options.command,
    args: options.args,
    cwd: options.workspace,
    env: options.processEnv,
    ...(options.uid !== undefined ? { uid: options.uid } : {}),
    ...(options.gid !== undefined ? { gid: options.gid } : {}),
    ...(prepare
      ? {
          prepare: async (pids: SandboxPids, prepareSignal: AbortSignal) => {
            step("sandbox started");
            await prepare(pids, prepareSignal);
            step("sandbox set up");
          },
        }
      : {}),
    ...handlers,
  });
}

/** The first frame the runner gets: who it is, its env and its persisted state. */
export function initFrame(options: AgentInstanceOptions, state: JsonObject, stateVersion: number): HostToAgent {
  return {
    type: "init",
    protocol: AGENT_PROTOCOL_VERSION,
    instanceId: options.instanceId,
    agentId: options.agentId,
    deploymentId: options.deploymentId,
    workspace: options.workspace,
    env: options.agentEnv,
    state,
    stateVersion,
    ...(options.entry ? { entry: options.entry } : {}),
  };
}
