/**
 * Start-up of the `podium` command, compiled (dist/, what `npm ci` builds) and from source through tsx
 * (PODIUM_FROM_SOURCE=1), beside `node -e 0` measured in the same run: `podium version`, and
 * `podium dev --agents examples` until it prints that it listens.
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
  const compiled = fs.existsSync(path.join(REPO_ROOT, "dist/services/cli/main.js"));
  if (!compiled) spawnSync("npm", ["run", "build"], { cwd: REPO_ROOT, stdio: "inherit" });
  const env = { ...process.env, PODIUM_FROM_SOURCE: "" };
  const source = { ...process.env, PODIUM_FROM_SOURCE: "1" };
  const bare = summarize(timed(["-e", "0"], env, runs));
  const version = summarize(timed([BIN, "version"], env, runs));
  const versionSource = summarize(timed([BIN, "version"], source, Math.min(runs, 3)));
  const dev: number[] = [];
  for (let i = 0; i < Math.min(runs, 3); i++) dev.push(await devReady(env));
  const devSource = [await devReady(source)];
  return {
    "node -e 0 p50 ms": bare.p50,
    "podium version p50 ms (compiled)": version.p50,
    "podium version p50 ms (source, tsx)": versionSource.p50,
    "podium version / node -e 0": version.p50 / bare.p50,
    "podium dev ready p50 ms (compiled)": summarize(dev).p50,
    "podium dev ready ms (source, tsx)": devSource[0] ?? NaN,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  printTable("start-up of the podium command", await runStartupBench());
}
