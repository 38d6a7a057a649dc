/**
 * What a warm runner does while it waits for its `init` (runner.ts; the coordinator's pool spawned it
 * before any deployment was known): the work every agent's start repeats, done ahead with none of an
 * agent's code. The SDK's package name is registered and its module loaded, so an entry's
 * `import ... from "@podium-agents/sdk"` is a cache hit; the state tracker and a host frame's parser run
 * once, so their first real use is not their first ever. Measured: a claimed runner's `init` -> `ready`
 * in about half the time. Nothing here writes a frame or reads input; a failure is only a slower start.
 */
import { parseHostFrame } from "./host-frames.js";
import { SDK_PACKAGE, registerSdkModule } from "./sdk-module.js";
import { StateTracker } from "./tracked-state.js";

export async function warmUp(sdkVersion: string): Promise<void> {
  try {
    if (registerSdkModule()) await import(SDK_PACKAGE);
    const tracker = new StateTracker({});
    tracker.replace({ turns: 0, history: [{ role: "user", text: "" }] }, true);
    const state = tracker.state as { turns: number; history: unknown[] };
    state.turns += 1;
    state.history.push({ role: "agent", text: "" });
    tracker.takeOps();
    parseHostFrame('{"type":"cancel","turn":0}', sdkVersion);
  } catch {
    // only a slower first start
  }
}
