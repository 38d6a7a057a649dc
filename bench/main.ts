/** `npm run bench`: every benchmark, each printing numbers and ratios against a same-run baseline. */
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { printTable, type BenchResults } from "./bench-util.js";

const suites: [string, string, string][] = [
  ["start-up of the podium command (vs node -e 0)", "./startup-bench.ts", "runStartupBench"],
  ["cold create of a new agent: warm runners vs a spawn per create (vs bare spawn)", "./create-bench.ts", "runCreateBench"],
  ["sandbox cost: create -> ready with and without isolation", "./sandbox-bench.ts", "runSandboxBench"],
  ["per-agent SQLite stores", "./store-bench.ts", "runStoreBench"],
  ["Chronicle workspace capture", "./chronicle-bench.ts", "runChronicleBench"],
  ["restart-to-ready with a large state", "./restart-bench.ts", "runRestartBench"],
  ["other agents' round trips while one agent snapshots ~50 MiB", "./snapshot-stall-bench.ts", "runSnapshotStallBench"],
  ["streaming through the gateway (in-process coordinator)", "./stream-bench.ts", "runStreamBench"],
  ["web console: bundle size, a 10,000-event stream on the instance page (Chromium)", "./console-bench.ts", "runConsoleBench"],
  ["scale: one coordinator from 1 to N live instances", "./scale-bench.ts", "runScaleBench"],
  ["hibernation: wake vs create, memory per hibernated instance", "./hibernation-bench.ts", "runHibernationBench"],
  ["gateway + coordinator as separate processes", "./cluster-bench.ts", "runClusterBench"],
  ["reliability: slow readers and a coordinator's death window", "./reliability-bench.ts", "runReliabilityBench"],
  ["bursts of concurrent creates over 2 coordinators (heartbeats, 429s, orphans)", "./create-burst-bench.ts", "runCreateBurstBench"],
  ["Litestream replication", "./replication-bench.ts", "runReplicationBench"],
  ["instance life cycle with replication (vs without)", "./replicated-lifecycle-bench.ts", "runReplicatedLifecycleBench"],
];

const only = process.argv[2];
for (const [title, file, exported] of suites) {
  if (only && !file.includes(only)) continue;
  const full = path.join(path.dirname(new URL(import.meta.url).pathname), file);
  if (!fs.existsSync(full)) continue;
  const mod = (await import(pathToFileURL(full).href)) as Record<string, () => Promise<BenchResults>>;
  const run = mod[exported];
  if (!run) throw new Error(`${file} does not export ${exported}`);
  printTable(title, await run());
}
