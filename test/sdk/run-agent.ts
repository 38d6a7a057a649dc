/**
 * Runs an agent bundle locally through the test harness, without a coordinator:
 *
 *   npx tsx test/sdk/run-agent.ts examples/echo-py "hello world" '{"text":"as JSON"}'
 *
 * Reads <bundle>/podium.json (runtime, entry), sends init, one message per argument (plain text
 * becomes {"text": ...}), then stop, and prints every frame the agent sends plus its stdout/stderr.
 */
import fs from "node:fs";
import path from "node:path";
import { AgentHarness, type Runtime } from "./agent-harness.js";
import type { AgentToHost } from "../../services/coordinator/agent-protocol.js";
import type { JsonObject } from "../../services/shared/json.js";

function content(arg: string): JsonObject {
  try {
    const value: unknown = JSON.parse(arg);
    if (typeof value === "object" && value !== null && !Array.isArray(value)) return value as JsonObject;
  } catch {
    // plain text
  }
  return { text: arg };
}

function show(frame: AgentToHost): string {
  const text = JSON.stringify(frame);
  return text.length > 400 ? `${text.slice(0, 400)}… (${text.length} chars)` : text;
}

async function main(argv: string[]): Promise<number> {
  const [bundle, ...messages] = argv;
  if (!bundle) {
    process.stderr.write("usage: npx tsx test/sdk/run-agent.ts <bundle dir> [message ...]\n");
    return 2;
  }
  const manifest = JSON.parse(fs.readFileSync(path.join(bundle, "podium.json"), "utf8")) as { runtime: Runtime; entry: string };
  const agent = AgentHarness.spawn({ runtime: manifest.runtime, entry: path.resolve(bundle, manifest.entry) });
  let printed = 0;
  const flush = () => {
    for (; printed < agent.frames.length; printed++) console.log(show(agent.frames[printed] as AgentToHost));
  };
  try {
    const started = performance.now();
    await agent.start();
    flush();
    console.log(`# ready after ${(performance.now() - started).toFixed(1)} ms`);
    let turn = 1;
    for (const message of messages) {
      await agent.turn(turn++, content(message));
      flush();
    }
    agent.send({ type: "stop", graceMs: 5000 });
    const exit = await agent.exited;
    flush();
    console.log(`# exit ${JSON.stringify(exit)}`);
  } catch (error) {
    flush();
    console.error(String(error));
  } finally {
    if (agent.stdout) console.log(`# stdout\n${agent.stdout.trimEnd()}`);
    if (agent.stderr) console.log(`# stderr\n${agent.stderr.trimEnd()}`);
    await agent.close();
  }
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
