/**
 * What isolation costs: instance create -> ready (p50/p95) for the Python and TypeScript echo agents
 * with the full sandbox (own uid when root, user + network namespaces with egress, cgroup, disk volume),
 * then without the network namespace's egress, without cgroups and disk volumes, and unsandboxed — all
 * in one run, so the ratios hold on a loaded machine. Goal: egress adds at most 10 ms to create -> ready.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { createDevServer } from "../services/dev/create-dev-server.js";
import type { CoordinatorOptions } from "../services/coordinator/create-coordinator.js";
import { REPO_ROOT } from "../services/coordinator/runtime-commands.js";
import { silentLogger } from "../services/shared/logger.js";
import { printTable, summarize, type BenchResults } from "./bench-util.js";

type Variant = { name: string; network: "egress" | "none" | "host"; coordinator: Partial<CoordinatorOptions> };

const VARIANTS: Variant[] = [
  { name: "full sandbox (egress)", network: "egress", coordinator: {} },
  { name: "sandbox, network none", network: "none", coordinator: {} },
  { name: "sandbox, no cgroup/volume", network: "none", coordinator: { cgroups: false, diskVolumes: false } },
  { name: "unsandboxed", network: "host", coordinator: { sandbox: "none", cgroups: false, diskVolumes: false } },
];

/** The echo examples with `network` set, in a temp agents dir. */
function agents(dir: string, network: string): string {
  const out = path.join(dir, `agents-${network}`);
  for (const name of ["echo-ts", "echo-py"]) {
    fs.cpSync(path.join(REPO_ROOT, "examples", name), path.join(out, name), { recursive: true });
    const manifestFile = path.join(out, name, "podium.json");
    const manifest = JSON.parse(fs.readFileSync(manifestFile, "utf8")) as Record<string, unknown>;
    fs.writeFileSync(manifestFile, JSON.stringify({ ...manifest, network }));
  }
  return out;
}

async function createReady(url: string, deployment: string, runs: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    const res = await fetch(`${url}/api/v1/instances`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ deployment_id: `${deployment}:1.0.0@local` }),
    });
    const body = (await res.json()) as { instance_id: string };
    if (res.status !== 201) throw new Error(`create failed: ${JSON.stringify(body)}`);
    samples.push(performance.now() - start);
    await fetch(`${url}/api/v1/instances/${body.instance_id}`, { method: "DELETE" });
  }
  return samples;
}

export async function runSandboxBench(runs = 15): Promise<BenchResults> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-bench-sandbox-"));
  fs.chmodSync(dir, 0o711); // agents' uids pass through on their way to their workspaces
  const results: BenchResults = {};
  const p50 = new Map<string, number>();
  try {
    for (const variant of VARIANTS) {
      const server = await createDevServer({
        port: 0,
        dataDir: path.join(dir, variant.name.replace(/\W+/g, "-")),
        agentsDir: agents(dir, variant.network),
        logger: silentLogger,
        // A spawn per create: this measures what isolation costs a start (warm runners hide it; create-bench.ts).
        coordinator: { ...variant.coordinator, warmRunners: 0 },
      });
      try {
        for (const agent of ["echo-py", "echo-ts"]) {
          process.stderr.write(`sandbox bench: ${agent} ${variant.name}\n`);
          await createReady(server.url, agent, 2); // warm the bundle cache and page cache
          const s = summarize(await createReady(server.url, agent, runs));
          results[`${agent} ${variant.name} create->ready p50 ms`] = s.p50;
          results[`${agent} ${variant.name} create->ready p95 ms`] = s.p95;
          p50.set(`${agent} ${variant.name}`, s.p50);
        }
      } finally {
        await server.close();
      }
    }
    for (const agent of ["echo-py", "echo-ts"]) {
      const full = p50.get(`${agent} full sandbox (egress)`) ?? NaN;
      results[`${agent} egress cost ms (goal <= 10)`] = full - (p50.get(`${agent} sandbox, network none`) ?? NaN);
      results[`${agent} full sandbox / unsandboxed p50`] = full / (p50.get(`${agent} unsandboxed`) ?? NaN);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  printTable("sandbox cost: create -> ready", await runSandboxBench());
}
