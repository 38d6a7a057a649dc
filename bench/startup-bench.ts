/**
 * Start-up of the `podium` command, compiled (dist/, what `npm ci` builds) and from source through tsx
 * (PODIUM_FROM_SOURCE=1), beside `node -e 0` measured in the same run: `podium version`,
 * `podium acp` until it answers `initialize`, and `podium dev --agents examples` until it prints that
 * it listens. Rounds interleave the commands (the machine may be busy with other work). It builds
 * first: with dist/ older than the sources, bin/podium.js would run them through tsx.
 */
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { REPO_ROOT } from "../services/coordinator/runtime-commands.js";
import { printTable, summarize, type BenchResults } from "./bench-util.js";

const BIN = path.join(REPO_ROOT, "bin/podium.js");

function timed(args: string[], env: NodeJS.ProcessEnv, runs: number): number[] {
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    const result = spawnSync(process.execPath, args, { stdio: "ignore", env });
    if (result.status !== 0) throw new Error(`node ${args.join(" ")} failed`);
    samples.push(performance.now() - start);
  }
  return samples;
}

/** ms from spawning `podium acp` (and writing `initialize` to it) until its answer's line. */
function acpInitialized(env: NodeJS.ProcessEnv): Promise<number> {
  const start = performance.now();
  const child = spawn(process.execPath, [BIN, "acp", "--url", "http://127.0.0.1:9", "--deployment", "bench"], { env, stdio: ["pipe", "pipe", "ignore"] });
  const initialize = { jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: 1, clientCapabilities: {} } };
  child.stdin.write(`${JSON.stringify(initialize)}\n`);
  return new Promise<number>((resolve, reject) => {
    let out = "";
    let ms = NaN;
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (Number.isNaN(ms) && out.includes("\n")) {
        ms = performance.now() - start;
        child.stdin.end();
      }
    });
    child.once("error", reject);
    child.once("close", (code) => {
      if (Number.isNaN(ms) || !out.includes('"protocolVersion"')) reject(new Error(`podium acp exited (${code}) without answering initialize: ${out}`));
      else resolve(ms);
    });
  });
}

/** ms from spawning `podium dev` until it prints its URL. */
function devReady(env: NodeJS.ProcessEnv): Promise<number> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-bench-start-"));
  const start = performance.now();
  const child = spawn(process.execPath, [BIN, "dev", "--port", "0", "--data", dataDir, "--agents", path.join(REPO_ROOT, "examples"), "--log-level", "silent"], {
    env,
    stdio: ["ignore", "pipe", "ignore"],
  });
  return new Promise<number>((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes("listening on")) {
        const ms = performance.now() - start;
        child.once("close", () => {
          fs.rmSync(dataDir, { recursive: true, force: true });
          resolve(ms);
        });
        child.kill("SIGINT");
      }
    });
    child.once("error", reject);
    child.once("close", (code) => {
      if (!out.includes("listening on")) reject(new Error(`podium dev exited (${code}) before listening`));
    });
  });
}

export async function runStartupBench(runs = 5): Promise<BenchResults> {
  const build = spawnSync("npm", ["run", "build"], { cwd: REPO_ROOT, stdio: ["ignore", "ignore", "inherit"] });
  if (build.status !== 0) throw new Error("npm run build failed");
  const env = { ...process.env, PODIUM_FROM_SOURCE: "" };
  const source = { ...process.env, PODIUM_FROM_SOURCE: "1" };
  const bare: number[] = [];
  const version: number[] = [];
  const acp: number[] = [];
  const dev: number[] = [];
  for (let i = 0; i < runs; i++) {
    bare.push(...timed(["-e", "0"], env, 1));
    version.push(...timed([BIN, "version"], env, 1));
    acp.push(await acpInitialized(env));
    if (i < 3) dev.push(await devReady(env));
  }
  const versionSource = summarize(timed([BIN, "version"], source, Math.min(runs, 3)));
  const acpSource = await acpInitialized(source);
  const devSource = await devReady(source);
  const bareP50 = summarize(bare).p50;
  return {
    "node -e 0 p50 ms": bareP50,
    "podium version p50 ms (compiled)": summarize(version).p50,
    "podium version p50 ms (source, tsx)": versionSource.p50,
    "podium version / node -e 0": summarize(version).p50 / bareP50,
    "podium acp initialize p50 ms (compiled)": summarize(acp).p50,
    "podium acp initialize ms (source, tsx)": acpSource,
    "podium dev ready p50 ms (compiled)": summarize(dev).p50,
    "podium dev ready ms (source, tsx)": devSource,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  printTable("start-up of the podium command", await runStartupBench());
}
