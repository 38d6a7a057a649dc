/**
 * SDK numbers: spawn -> ready of both runners vs bare interpreters, state-tracking ops/s, and
 * loading a 50 MB state. Timing goals live here, not in test assertions.
 *
 *   npx tsx test/sdk/bench/sdk-bench.ts [runs=20] [startup,tracking,load]
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { AgentHarness, example, fixture, REPO_ROOT, runtimeCommands, RUNTIMES, type Runtime } from "../agent-harness.js";

const RUNS = Number(process.argv[2] ?? 20);
const ECHO: Record<Runtime, string> = { typescript: example("echo-ts", "agent.ts"), python: example("echo-py", "agent.py") };
const PLAIN: Record<Runtime, string> = { typescript: fixture("ts/plain.ts"), python: fixture("py/plain.py") };

function p50(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

function bare(command: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { stdio: "ignore" });
    child.once("error", reject);
    child.once("exit", () => resolve(performance.now() - started));
  });
}

async function ready(runtime: Runtime, entry: string): Promise<number> {
  const started = performance.now();
  const agent = AgentHarness.spawn({ runtime, entry });
  try {
    await agent.start();
    return performance.now() - started;
  } finally {
    await agent.close();
  }
}

async function startup(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-bench-"));
  fs.writeFileSync(path.join(dir, "x.ts"), "export {};\n");
  fs.writeFileSync(path.join(dir, "x.py"), "pass\n");
  const { bun, python } = runtimeCommands();
  const samples: Record<string, number[]> = { "bun x.ts": [], "python3 -I -S x.py": [], "ts runner -> ready": [], "py runner -> ready": [] };
  try {
    for (let i = 0; i < RUNS + 2; i++) {
      const round = [
        await bare(bun, [path.join(dir, "x.ts")]),
        await bare(python, ["-I", "-S", path.join(dir, "x.py")]),
        await ready("typescript", ECHO.typescript),
        await ready("python", ECHO.python),
      ];
      if (i < 2) continue; // warm caches (transpiler, pyc)
      for (const [j, list] of Object.values(samples).entries()) list.push(round[j] as number);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log(`\nspawn -> ready (p50 of ${RUNS}, ms; bare = spawn -> exit of an empty file)`);
  for (const [name, list] of Object.entries(samples)) console.log(`  ${name.padEnd(22)} ${p50(list).toFixed(1).padStart(7)}   min ${Math.min(...list).toFixed(1)}`);
}

function tracking(): Promise<void> {
  const { bun, python } = runtimeCommands();
  const run = (command: string, args: string[]) =>
    new Promise<string>((resolve, reject) => {
      const child = spawn(command, args, { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "inherit"] });
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      child.once("error", reject);
      child.once("exit", () => resolve(out));
    });
  return (async () => {
    console.log("\nstate tracking ops/s (ops flushed every 1000 mutations; plain = untracked object)");
    for (const out of [await run(bun, ["test/sdk/bench/state-bench.ts"]), await run(python, ["-I", "-S", "test/sdk/bench/state_bench.py"])]) {
      for (const line of out.trim().split("\n")) {
        const r = JSON.parse(line) as { runtime: string; workload: string; opsPerSec: number; plainOpsPerSec: number };
        console.log(`  ${r.runtime.padEnd(10)} ${r.workload.padEnd(28)} ${r.opsPerSec.toLocaleString("en").padStart(11)}   plain ${r.plainOpsPerSec.toLocaleString("en")}`);
      }
    }
  })();
}

function bigState(bytes: number): string {
  const records: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const record = JSON.stringify({ id: i, name: `record ${i}`, tags: ["alpha", "beta", String(i % 97)], done: i % 3 === 0, score: i / 7, text: "lorem ipsum dolor sit amet ".repeat(6) });
    records.push(record);
    size += record.length + 1;
  }
  return `{"counter":0,"records":[${records.join(",")}]}`;
}

async function load(stateJson: string): Promise<void> {
  console.log(`\n${(stateJson.length / 1e6).toFixed(1)} MB state (ms; host-side JSON.stringify excluded)`);
  for (const runtime of RUNTIMES) {
    for (const [label, version] of [
      ["resume (stateVersion 1)", 1],
      ["fresh (seeds a replace op)", 0],
    ] as const) {
      const agent = AgentHarness.spawn({ runtime, entry: PLAIN[runtime] });
      try {
        const started = performance.now();
        agent.sendRaw(
          `{"type":"init","protocol":1,"instanceId":"i","agentId":"a","deploymentId":"d","workspace":${JSON.stringify(agent.workspace)},"env":{},"stateVersion":${version},"state":${stateJson}}`,
        );
        await agent.waitFor((f) => f.type === "ready" || f.type === "fatal", 120_000);
        const readyMs = performance.now() - started;
        const turnStarted = performance.now();
        const turn = await agent.turn(1, {}, 60_000);
        const turnMs = performance.now() - turnStarted;
        const opsBytes = JSON.stringify(turn.patches.flatMap((p) => p.ops)).length;
        console.log(`  ${runtime.padEnd(10)} ${label.padEnd(27)} spawn->ready ${readyMs.toFixed(0).padStart(5)}   small-mutation turn ${turnMs.toFixed(1)} (patch ${opsBytes} bytes)`);
      } finally {
        await agent.close();
      }
    }
  }
}

const sections = new Set((process.argv[3] ?? "startup,tracking,load").split(","));
if (sections.has("startup")) await startup();
if (sections.has("tracking")) await tracking();
if (sections.has("load")) await load(bigState(50 * 1024 * 1024));
