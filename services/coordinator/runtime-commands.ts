/**
 * How agent processes are launched: which interpreter, which runner, which flags.
 * Resolved once per coordinator (resolving python3 through a pyenv shim costs ~40 ms per spawn).
 */
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

export type AgentRuntime = "python" | "typescript";

export interface RuntimeCommands {
  bun: string;
  python: string;
  /** Extra interpreter flags for Python; default ["-I", "-S"] (isolated, no site-packages: fast start). */
  pythonFlags: string[];
  tsRunner: string;
  pyRunner: string;
}

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

function resolveBun(): string {
  const require = createRequire(import.meta.url);
  try {
    return path.join(path.dirname(require.resolve("bun/package.json")), "bin", "bun.exe");
  } catch {
    return "bun";
  }
}

function resolvePython(candidate: string): string {
  const probe = spawnSync(candidate, ["-I", "-S", "-c", "import sys; print(sys.executable)"], { encoding: "utf8", timeout: 10_000 });
  const executable = probe.status === 0 ? probe.stdout.trim() : "";
  return executable.length > 0 ? executable : candidate;
}

export function resolveRuntimeCommands(overrides: Partial<RuntimeCommands> = {}): RuntimeCommands {
  return {
    bun: overrides.bun ?? resolveBun(),
    python: overrides.python ?? resolvePython("python3"),
    pythonFlags: overrides.pythonFlags ?? ["-I", "-S"],
    tsRunner: overrides.tsRunner ?? path.join(REPO_ROOT, "sdk/typescript/src/runner.ts"),
    pyRunner: overrides.pyRunner ?? path.join(REPO_ROOT, "sdk/python/podium_runner.py"),
  };
}

/** argv for an agent entry file. */
export function agentCommand(commands: RuntimeCommands, runtime: AgentRuntime, entry: string): [string, string[]] {
  if (runtime === "typescript") return [commands.bun, [commands.tsRunner, entry]];
  return [commands.python, [...commands.pythonFlags, commands.pyRunner, entry]];
}
