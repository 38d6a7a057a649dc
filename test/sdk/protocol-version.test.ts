/**
 * Both runners check the protocol version of `init` (proto/podium/agent/v1/agent-protocol.schema.json) before
 * anything else: a host of another version gets `fatal` naming both versions, and the runner exits 1 without
 * loading the agent. Real runner processes through the harness.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import { AgentHarness, fixture, RUNTIMES, type Runtime } from "./agent-harness.js";
import { AGENT_PROTOCOL_VERSION, type AgentToHost } from "../../services/coordinator/agent-protocol.js";

const PLAIN: Record<Runtime, string> = { typescript: fixture("ts/plain.ts"), python: fixture("py/plain.py") };
const SDK: Record<Runtime, string> = { typescript: "podium-ts/", python: "podium-py/" };

const open: AgentHarness[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((agent) => agent.close()));
});

/** Sends an `init` whose `protocol` is `protocol` (left out when undefined) and waits for the runner to exit. */
async function initWith(runtime: Runtime, protocol: unknown): Promise<{ agent: AgentHarness; code: number | null }> {
  const agent = AgentHarness.spawn({ runtime, entry: PLAIN[runtime] });
  open.push(agent);
  const init: Record<string, unknown> = {
    type: "init",
    protocol,
    instanceId: "inst-test",
    agentId: "agent-test",
    deploymentId: "test:1.0.0@local",
    workspace: agent.workspace,
    env: {},
    state: {},
    stateVersion: 0,
  };
  agent.sendRaw(JSON.stringify(init));
  const { code } = await agent.exited;
  return { agent, code };
}

function fatalOf(frames: readonly AgentToHost[]): string | undefined {
  const fatal = frames.find((f): f is Extract<AgentToHost, { type: "fatal" }> => f.type === "fatal");
  return fatal?.error.message;
}

describe.each(RUNTIMES)("%s runner", (runtime) => {
  it("answers an init of another protocol version with fatal naming both versions, and exits 1", async () => {
    const { agent, code } = await initWith(runtime, AGENT_PROTOCOL_VERSION + 1);
    expect(code).toBe(1);
    const message = fatalOf(agent.frames);
    expect(message).toContain(`agent protocol mismatch: the host speaks version ${AGENT_PROTOCOL_VERSION + 1}, ${SDK[runtime]}`);
    expect(message).toContain(`speaks version ${AGENT_PROTOCOL_VERSION}; run the agent with the SDK of its coordinator's version`);
    // Nothing else was done: no state seeded, never ready.
    expect(agent.frames.map((f) => f.type)).toEqual(["fatal"]);
    expect(agent.badLines).toEqual([]);
  }, 60_000);

  it("treats an init without a protocol version as a mismatch", async () => {
    const { agent, code } = await initWith(runtime, undefined);
    expect(code).toBe(1);
    expect(fatalOf(agent.frames)).toContain("the host speaks version none");
  }, 60_000);

  it("starts on an init of its own version", async () => {
    const agent = AgentHarness.spawn({ runtime, entry: PLAIN[runtime] });
    open.push(agent);
    expect(await agent.start({ protocol: AGENT_PROTOCOL_VERSION }, 30_000)).toMatchObject({ type: "ready", protocol: AGENT_PROTOCOL_VERSION });
  }, 60_000);
});
