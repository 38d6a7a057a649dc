/**
 * What a warm runner does while it waits for its `init` (runner.ts; the coordinator's pool spawned it
 * before any deployment was known): the work every agent's start and first turn repeat, done ahead with
 * none of an agent's code. The SDK's package name is registered and its module loaded, so an entry's
 * `import ... from "@podium-agents/sdk"` is a cache hit; then a stand-in agent is started and given one
 * turn by a runtime of its own whose frames go nowhere, so the real start and first turn run code that
 * has been parsed and run before (JavaScriptCore compiles a function when it is first called). Nothing
 * here reads input, writes a frame or touches the process's environment; a failure is only a slower start.
 */
import { AgentRuntime } from "./agent-runtime.js";
import type { Agent } from "./agent-types.js";
import { FrameWriter } from "./frame-io.js";
import { AGENT_PROTOCOL_VERSION } from "./protocol.gen.js";
import { SDK_PACKAGE, registerSdkModule } from "./sdk-module.js";

export async function warmUp(): Promise<void> {
  try {
    if (registerSdkModule()) await import(SDK_PACKAGE);
    await rehearse();
  } catch {
    // only a slower first start
  }
}

/** One start and one turn of a stand-in agent through a runtime of its own (the frames are dropped). */
async function rehearse(): Promise<void> {
  let turnRan: () => void = () => undefined;
  const ran = new Promise<void>((resolve) => (turnRan = resolve));
  const agent: Agent<{ turns: number; history: { role: string; text: string }[] }> = {
    initialState: { turns: 0, history: [] },
    onStart(ctx) {
      ctx.state.history.length = 0;
    },
    onMessage(ctx, message) {
      ctx.state.turns += 1;
      ctx.state.history.push({ role: "user", text: String(message.text ?? "") });
      ctx.send("stream_start", { turn: ctx.state.turns });
      ctx.send("stream_update", { text: "warm" });
      ctx.send("stream_end");
      turnRan();
    },
  };
  const runtime = new AgentRuntime({
    load: () => Promise.resolve(agent as unknown as Agent),
    inputFd: -1, // never read: start() is not called
    writer: new FrameWriter(-1, () => undefined),
    exit: () => undefined,
  });
  runtime.receive(JSON.stringify({ type: "init", protocol: AGENT_PROTOCOL_VERSION, instanceId: "warm-up", agentId: "warm-up", deploymentId: "", workspace: "/", env: {}, stateVersion: 0, state: {} }));
  runtime.receive(JSON.stringify({ type: "message", turn: 1, content: { text: "warm up" } }));
  await ran;
  // The turn's end (its state patch and turn_done) is written after the handler returned.
  await new Promise((resolve) => setTimeout(resolve, 0));
  // What the rehearsal left is collected now, not during the real start (and not kept: the runner's memory).
  (globalThis as { Bun?: { gc(force: boolean): void } }).Bun?.gc(true);
}
