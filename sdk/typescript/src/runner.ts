/**
 * Podium TypeScript agent runner. Spawned by the coordinator as
 *   bun sdk/typescript/src/runner.ts <absolute entry path>
 * or, as a warm runner started before anyone asked for it, without the entry: `init.entry` names it.
 * with cwd = workspace, fd 0 = host -> agent NDJSON, fd 1/2 = logs, fd 3 = agent -> host NDJSON.
 * This is the only file that reads argv or touches process-wide handlers.
 */
import * as path from "node:path";
import { writeLog } from "./agent-context.js";
import { AgentRuntime } from "./agent-runtime.js";
import { FrameChannelClosedError, FrameWriter } from "./frame-io.js";
import type { InitFrame } from "./host-frames.js";
import { loadAgent } from "./load-agent.js";
import { warmUp } from "./warm-up.js";

const FRAME_FD = 3;
const entry = process.argv[2];

const writer = new FrameWriter(FRAME_FD);
const exit = (code: number): never => process.exit(code);

// Errors thrown outside any turn (timers, stray promises) are logged, not fatal.
const report = (what: string) => (error: unknown) => {
  if (error instanceof FrameChannelClosedError) exit(1);
  try {
    writeLog(writer, "error", [what, error]);
  } catch {
    exit(1);
  }
};
process.on("uncaughtException", report("uncaught exception:"));
// Frames batched in the last run go out before the process ends (also when agent code calls process.exit).
process.on("exit", () => {
  try {
    writer.flush();
  } catch {
    // the host is gone
  }
});
process.on("unhandledRejection", report("unhandled promise rejection:"));

const load = (init: InitFrame) => {
  const file = entry ?? init.entry;
  if (!file) return Promise.reject(new Error("no entry module: pass it as the runner's argument or in init.entry"));
  return loadAgent(path.resolve(file));
};
// A warm runner (no entry yet) does the work every agent's start repeats, then tells the pool it waits for `init`.
if (entry === undefined) {
  await warmUp();
  writer.write({ type: "waiting" });
  writer.flush();
}
new AgentRuntime({ load, inputFd: 0, writer, exit }).start();
