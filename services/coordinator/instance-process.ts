/**
 * The process an AgentInstance runs and the `init` frame it sends it: the warm runner it was given, or a
 * new sandboxed spawn of its runtime's runner.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { AgentProcess, type AgentProcessHandle, type AgentProcessHandlers, type SandboxPids } from "./agent-process.js";
import type { AgentInstanceOptions } from "./agent-instance-options.js";
import { AGENT_PROTOCOL_VERSION, type HostToAgent } from "./agent-protocol.js";
import type { JsonObject } from "../shared/json.js";
import { errorMessage } from "../shared/errors.js";

/** Longest the agent's `init` waits for sandbox set-up that may finish late (egress). */
const BEFORE_INIT_WAIT_MS = 3000;

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

/**
 * The first frame the runner gets, as the line written to it: who it is, its env and its persisted state
 * (the state object, or its JSON when it was serialized off the main thread), the state last.
 */
export function initLine(options: AgentInstanceOptions, state: JsonObject | Uint8Array, stateVersion: number): Uint8Array[] {
  const frame: Omit<Extract<HostToAgent, { type: "init" }>, "state"> = {
    type: "init",
    protocol: AGENT_PROTOCOL_VERSION,
    instanceId: options.instanceId,
    agentId: options.agentId,
    deploymentId: options.deploymentId,
    workspace: options.workspace,
    env: options.agentEnv,
    stateVersion,
    ...(options.entry ? { entry: options.entry } : {}),
  };
  const head = Buffer.from(`${JSON.stringify(frame).slice(0, -1)},"state":`);
  const tail = Buffer.from("}\n");
  return [head, state instanceof Uint8Array ? state : Buffer.from(JSON.stringify(state)), tail];
}

/** The `init` line with the agent's persisted state: a large state loads off the main thread, its JSON sent as is. */
export async function loadInitLine(options: AgentInstanceOptions, signal: AbortSignal | undefined): Promise<Uint8Array[]> {
  const loaded = await options.store.state.loadInBackground(signal);
  const current = loaded ?? options.store.state.current();
  return initLine(options, "json" in current ? current.json : current.state, current.version);
}

/**
 * Sends `init` once the sandbox is fully set up (`beforeInit`: its network). The runner loads the agent's
 * code on `init`, so the runtime's own start-up overlaps that set-up and the agent never runs without it.
 * Egress that could not be attached leaves the agent in its namespace with loopback only: fail-closed,
 * and the agent still starts (its network calls fail) instead of the create. The wait is bounded: a slow
 * attach (a starved host) lets the agent start; its egress comes up later.
 */
export function sendInitWhenSetUp(
  process: AgentProcessHandle,
  init: Uint8Array[],
  beforeInit: Promise<void> | undefined,
  hooks: { step(what: string): void; log(level: "warn" | "error", message: string): void; fail(err: ConnectError): void },
): void {
  const send = () => {
    hooks.step("init sent");
    try {
      process.write(init);
    } catch (err) {
      const message = `the agent's \`init\` could not be written to its runner (${errorMessage(err)})`;
      hooks.log("error", message);
      hooks.fail(new ConnectError(message, Code.ResourceExhausted));
    }
  };
  if (!beforeInit) return send();
  const waited = Promise.race([beforeInit, new Promise<void>((resolve) => setTimeout(resolve, BEFORE_INIT_WAIT_MS).unref())]);
  waited.then(send, (err: unknown) => {
    hooks.log("warn", `network egress could not be attached (${errorMessage(err)}); the agent runs without network`);
    send();
  });
}
