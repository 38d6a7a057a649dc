/**
 * Podium TypeScript agent runner. Spawned by the coordinator as
 *   bun sdk/typescript/src/runner.ts <absolute entry path>
 * with cwd = workspace, fd 0 = host -> agent NDJSON, fd 1/2 = logs, fd 3 = agent -> host NDJSON.
 * This is the only file that reads argv or touches process-wide handlers.
 */
import * as path from "node:path";
import { writeLog } from "./agent-context.js";
import { AgentRuntime } from "./agent-runtime.js";
import { FrameChannelClosedError, FrameWriter } from "./frame-io.js";
import { loadAgent } from "./load-agent.js";

const FRAME_FD = 3;
const entry = process.argv[2];
if (!entry) {
  process.stderr.write("usage: bun sdk/typescript/src/runner.ts <entry file>\n");
  process.exit(2);
}

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
process.on("unhandledRejection", report("unhandled promise rejection:"));

new AgentRuntime({ load: () => loadAgent(path.resolve(entry)), inputFd: 0, writer, exit }).start();
