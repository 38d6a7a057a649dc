/**
 * What a warm runner does while it waits for its `init` (runner.ts; the coordinator's pool spawned it
 * before its deployment was known): the work every agent's start and first turn repeat, done ahead with
 * none of an agent's code. The SDK's package name is registered and its module loaded, so an entry's
 * `import ... from "@podium-agents/sdk"` is a cache hit; then a stand-in agent is started and given one
 * turn by a runtime of its own whose frames go nowhere, so the real start and first turn run code that
 * has been parsed and run before (JavaScriptCore compiles a function when it is first called). Nothing
 * here reads input, writes a frame or to stderr, or touches the process's environment; the rehearsal
 * ends when its turn ended, when it failed, or after REHEARSAL_LIMIT_MS, so a failure is only a slower start.
 */
import { AgentRuntime } from "./agent-runtime.js";
import type { Agent } from "./agent-types.js";
import { FrameWriter } from "./frame-io.js";
import { AGENT_PROTOCOL_VERSION } from "./protocol.gen.js";
import { SDK_PACKAGE, registerSdkModule } from "./sdk-module.js";

/** Longest a rehearsal may take; a runner that waited this long reads its `init` anyway. */
export const REHEARSAL_LIMIT_MS = 1000;

export async function warmUp(): Promise<void> {
  try {
    if (registerSdkModule()) await import(SDK_PACKAGE);
    await rehearse();
    // What the rehearsal left is collected now, not during the real start (and not kept: the runner's memory).
    (globalThis as { Bun?: { gc(force: boolean): void } }).Bun?.gc(true);
  } catch {
    // only a slower first start
  }
}

/** The stand-in: state, a list in it, onStart, and a turn that streams three events. */
function standIn(): Agent {
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
    },
  };
  return agent as unknown as Agent;
}

/**
 * One start and one turn of `agent` through a runtime of its own (its frames dropped, its fatal report
 * silenced). Resolves once the turn ended or the rehearsal failed, or after `limitMs`; never rejects.
 */
export async function rehearse(agent: Agent = standIn(), limitMs = REHEARSAL_LIMIT_MS): Promise<void> {
  let over: () => void = () => undefined;
  const ended = new Promise<void>((resolve) => (over = resolve));
  const timer = setTimeout(over, limitMs);
  try {
    const runtime = new AgentRuntime({
      load: () => Promise.resolve(agent),
      inputFd: -1, // never read: start() is not called
      // The turn's last frame, or the failure's (a `fatal` frame, then exit).
      writer: new FrameWriter(-1, (bytes) => {
        if (bytes.includes('"turn_done"') || bytes.includes('"fatal"')) over();
      }),
      exit: () => over(),
      stderr: () => undefined,
    });
    runtime.receive(
      JSON.stringify({ type: "init", protocol: AGENT_PROTOCOL_VERSION, instanceId: "warm-up", agentId: "warm-up", deploymentId: "", workspace: "/", env: {}, stateVersion: 0, state: {} }),
    );
    runtime.receive(JSON.stringify({ type: "message", turn: 1, content: { text: "warm up" } }));
    await ended;
  } catch {
    // only a slower first start
  } finally {
    clearTimeout(timer);
  }
}
