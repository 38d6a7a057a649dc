/**
 * Cold create of a new agent, through the real gateway of `podium dev`, for TypeScript and Python:
 * POST /instances -> 201, and create -> first reply (the 201, then a WebSocket, a message, and the
 * reply's first `stream_update`). Each with warm runners (the default) and without (--warm-runners 0: a
 * spawn per create), beside bare `bun x.ts` / `python3 -I -S x.py` spawns measured in the same run; and
 * the longest the server's event loop was blocked during each create (what every other agent waited).
 */
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { createDevServer, type DevServer } from "../services/dev/create-dev-server.js";
import { REPO_ROOT, resolveRuntimeCommands } from "../services/coordinator/runtime-commands.js";
import { createLogger } from "../services/shared/logger.js";
const silentLogger = createLogger({ level: process.env.BENCH_LOG_LEVEL === "warn" ? "warn" : "silent" });
import { printTable, summarize, type BenchResults } from "./bench-util.js";
import { createAndReply as createInProcess, type CreateSample } from "./create-exchange.js";

function bareSpawn(command: string, args: string[], runs: number): number[] {
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    const result = spawnSync(command, args, { stdio: "ignore" });
    if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} failed`);
    samples.push(performance.now() - start);
  }
  return samples;
}

/** Resolves once the coordinator has `count` warm runners of `runtime` ready (the pool refills in the background). */
async function poolReady(server: DevServer, runtime: "typescript" | "python", count: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (server.coordinator.manager.warmRunnerStats().ready[runtime] < count) {
    if (Date.now() > deadline) throw new Error(`the ${runtime} warm runners did not refill within 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Creates from a client in its own process (create-client.ts); `close()` ends it. */
function ownProcessClient(): { create(url: string, deploymentId: string): Promise<CreateSample>; close(): void } {
  const client = spawn(process.execPath, ["--import", "tsx", path.join(path.dirname(new URL(import.meta.url).pathname), "create-client.ts")], { stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: client.stdout });
  const waiting: { resolve(sample: CreateSample): void; reject(err: Error): void }[] = [];
  lines.on("line", (line) => {
    const next = waiting.shift();
    try {
      const answer = JSON.parse(line) as CreateSample | { error: string };
      if ("error" in answer) next?.reject(new Error(answer.error));
      else next?.resolve(answer);
    } catch {
      next?.reject(new Error(`the create client printed ${JSON.stringify(line.slice(0, 200))}`));
    }
  });
  client.once("exit", (code) => {
    for (const next of waiting.splice(0)) next.reject(new Error(`the create client exited (${code})`));
  });
  return {
    create: (url, deploymentId) =>
      new Promise((resolve, reject) => {
        waiting.push({ resolve, reject });
        client.stdin.write(`${url} ${deploymentId}\n`);
      }),
    close: () => client.stdin.end(),
  };
}

/**
 * `ownProcess`: the creates come from a client in a process of its own (as a real client's do), else from
 * this process (the client's fetch and WebSocket work then take turns with the server's on one event loop).
 */
async function measure(warmRunners: number, runs: number, dir: string, ownProcess = false): Promise<BenchResults> {
  const dataDir = fs.mkdtempSync(path.join(dir, "data-"));
  const server = await createDevServer({ port: 0, dataDir, agentsDir: path.join(REPO_ROOT, "examples"), logger: silentLogger, coordinator: { warmRunners } });
  const label = `${warmRunners > 0 ? "warm" : "cold"}${ownProcess ? " (client in its own process)" : ""}`;
  const client = ownProcess ? ownProcessClient() : undefined;
  const createAndReply = client ? client.create : createInProcess;
  const results: BenchResults = {};
  try {
    for (const [name, runtime] of [
      ["echo-ts", "typescript"],
      ["echo-py", "python"],
    ] as const) {
      const created: number[] = [];
      const replied: number[] = [];
      /** The longest the server's event loop was blocked during each create (every other agent waited that long). */
      const stalls: number[] = [];
      const loop = monitorEventLoopDelay({ resolution: 1 });
      // The first create of a runtime starts its pool (observed demand); it is not sampled.
      await fetch(`${server.url}/api/v1/instances/${(await createAndReply(server.url, `${name}:1.0.0@local`)).instanceId}`, { method: "DELETE" });
      for (let i = 0; i < runs; i++) {
        if (warmRunners > 0) await poolReady(server, runtime, warmRunners);
        // A create arriving at an idle coordinator: the previous instance's teardown (unmount, cgroup) is over.
        await new Promise((resolve) => setTimeout(resolve, 250));
        loop.reset();
        loop.enable();
        const sample = await createAndReply(server.url, `${name}:1.0.0@local`);
        loop.disable();
        stalls.push(loop.max / 1e6);
        created.push(sample.created);
        replied.push(sample.replied);
        await fetch(`${server.url}/api/v1/instances/${sample.instanceId}`, { method: "DELETE" });
      }
      const c = summarize(created);
      const r = summarize(replied);
      results[`${name} ${label} create->201 p50 ms`] = c.p50;
      results[`${name} ${label} create->first reply p50 ms`] = r.p50;
      results[`${name} ${label} create->first reply p95 ms`] = r.p95;
      results[`${name} ${label} longest event-loop stall per create p50 ms`] = summarize(stalls).p50;
    }
    if (warmRunners > 0) {
      const stats = server.coordinator.manager.warmRunnerStats();
      results[`${label} creates served by a warm runner (%)`] = (100 * stats.claims) / Math.max(1, stats.claims + stats.misses);
    }
  } finally {
    client?.close();
    await server.close();
  }
  return results;
}

export async function runCreateBench(runs = 20): Promise<BenchResults> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-bench-"));
  fs.chmodSync(dir, 0o711); // agents' uids pass through on their way to their workspaces (full isolation)
  const commands = resolveRuntimeCommands();
  fs.writeFileSync(path.join(dir, "x.ts"), "export {};\n");
  fs.writeFileSync(path.join(dir, "x.py"), "pass\n");
  try {
    const bunBare = summarize(bareSpawn(commands.bun, [path.join(dir, "x.ts")], runs));
    const pyBare = summarize(bareSpawn(commands.python, ["-I", "-S", path.join(dir, "x.py")], runs));
    const cold = await measure(0, runs, dir);
    const warm = await measure(2, runs, dir);
    const warmOwnProcess = await measure(2, runs, dir, true);
    const ratio = (key: string, bare: number) => (warm[key] ?? NaN) / bare;
    return {
      "bun x.ts spawn p50 ms": bunBare.p50,
      "python3 -I -S x.py spawn p50 ms": pyBare.p50,
      ...cold,
      ...warm,
      ...warmOwnProcess,
      "echo-ts warm first reply / bare bun spawn": ratio("echo-ts warm create->first reply p50 ms", bunBare.p50),
      "echo-py warm first reply / bare python spawn": ratio("echo-py warm create->first reply p50 ms", pyBare.p50),
      "echo-ts warm first reply, client in its own process / bare bun spawn": (warmOwnProcess["echo-ts warm (client in its own process) create->first reply p50 ms"] ?? NaN) / bunBare.p50,
      "echo-py warm first reply, client in its own process / bare python spawn": (warmOwnProcess["echo-py warm (client in its own process) create->first reply p50 ms"] ?? NaN) / pyBare.p50,
      "echo-ts cold 201 / bare bun spawn": (cold["echo-ts cold create->201 p50 ms"] ?? NaN) / bunBare.p50,
      "echo-py cold 201 / bare python spawn": (cold["echo-py cold create->201 p50 ms"] ?? NaN) / pyBare.p50,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  printTable("cold create of a new agent (warm runners vs a spawn per create)", await runCreateBench());
}
