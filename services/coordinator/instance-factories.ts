/**
 * What the coordinator core makes its instances from, injected so that unit tests replace it: each process
 * of an instance (AgentProcessFactory) and what one run of an agent opens before its process starts
 * (AgentStoreFactory: its sandbox launch, databases and workspace). The real ones are the defaults, here.
 */
import type { AgentProcessFactory } from "./agent-instance-options.js";
import { instanceProcess } from "./instance-process.js";
import { openAgent, type OpenAgentDeps, type OpenAgentRequest, type OpenedAgent } from "./open-agent.js";

/** Opens what one run of an agent needs: its launch, its databases (AgentStore) and its versioned workspace. */
export type AgentStoreFactory = (request: OpenAgentRequest) => Promise<OpenedAgent>;

export interface InstanceFactories {
  processFactory: AgentProcessFactory;
  storeFactory: AgentStoreFactory;
}

/** The warm runner an instance was given, claimed, or a new sandboxed spawn of its runtime's runner. */
export const defaultProcessFactory: AgentProcessFactory = instanceProcess;

/** The agent's sandbox launch, its databases (seeded from the store template) and its Chronicle workspace. */
export function defaultStoreFactory(deps: OpenAgentDeps): AgentStoreFactory {
  return (request) => openAgent(deps, request);
}

/** The factories given, the real ones for those not given. */
export function compileInstanceFactories(given: Partial<InstanceFactories>, deps: OpenAgentDeps): InstanceFactories {
  return {
    processFactory: given.processFactory ?? defaultProcessFactory,
    storeFactory: given.storeFactory ?? defaultStoreFactory(deps),
  };
}
