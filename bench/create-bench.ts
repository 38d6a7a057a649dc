/**
 * Instance create -> agent ready (p50/p95) for TypeScript and Python through the real gateway,
 * beside bare `bun file.ts` and `python3 -I -S file.py` spawns measured in the same run.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { createDevServer } from "../services/dev/create-dev-server.js";
import { REPO_ROOT, resolveRuntimeCommands } from "../services/coordinator/runtime-commands.js";
import { silentLogger } from "../services/shared/logger.js";
import { printTable, summarize, type BenchResults } from "./bench-util.js";

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

export async function runCreateBench(runs = 20): Promise<BenchResults> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-bench-"));
  const commands = resolveRuntimeCommands();
  fs.writeFileSync(path.join(dir, "x.ts"), "export {};\n");
  fs.writeFileSync(path.join(dir, "x.py"), "pass\n");
  const bunBare = summarize(bareSpawn(commands.bun, [path.join(dir, "x.ts")], runs));
  const pyBare = summarize(bareSpawn(commands.python, ["-I", "-S", path.join(dir, "x.py")], runs));
  const server = await createDevServer({ port: 0, dataDir: dir, agentsDir: path.join(REPO_ROOT, "examples"), logger: silentLogger });
  const results: BenchResults = {
    "bun x.ts spawn p50 ms": bunBare.p50,
    "python3 -I -S x.py spawn p50 ms": pyBare.p50,
  };
  try {
    for (const [name, bare] of [["echo-ts", bunBare], ["echo-py", pyBare]] as const) {
      const samples: number[] = [];
      for (let i = 0; i < runs; i++) {
        const start = performance.now();
        const res = await fetch(`${server.url}/api/v1/instances`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ deployment_id: `${name}:1.0.0@local` }),
        });
        const body = (await res.json()) as { instance_id: string };
        samples.push(performance.now() - start);
        if (res.status !== 201) throw new Error(`create failed: ${JSON.stringify(body)}`);
        await fetch(`${server.url}/api/v1/instances/${body.instance_id}`, { method: "DELETE" });
      }
      const s = summarize(samples);
      results[`${name} create->ready p50 ms`] = s.p50;
      results[`${name} create->ready p95 ms`] = s.p95;
      results[`${name} p50 / bare spawn p50`] = s.p50 / bare.p50;
    }
  } finally {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  printTable("instance create -> ready", await runCreateBench());
}
