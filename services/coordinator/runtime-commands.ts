/**
 * How agent processes are launched: which interpreter, which runner, which flags.
 * Resolved once per coordinator (resolving python3 through a pyenv shim costs ~40 ms per spawn).
 */
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

export type AgentRuntime = "python" | "typescript";

export interface RuntimeCommands {
  bun: string;
  python: string;
  /** sys.prefix of the Python interpreter (mounted read-only into sandboxes). */
  pythonPrefix: string;
  /** Extra interpreter flags for Python; default ["-I", "-S"] (isolated, no site-packages: fast start). */
  pythonFlags: string[];
  tsRunner: string;
  pyRunner: string;
}

/** The checkout (or installed package): where sdk/ lives, whether this module runs from source or from dist/. */
export const REPO_ROOT = findPackageRoot(path.dirname(fileURLToPath(import.meta.url)));

function findPackageRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, "package.json")) && fs.existsSync(path.join(dir, "sdk"))) return dir;
    if (path.dirname(dir) === dir) return path.resolve(from, "../..");
  }
}

function resolveBun(): string {
  const require = createRequire(import.meta.url);
  try {
    return path.join(path.dirname(require.resolve("bun/package.json")), "bin", "bun.exe");
  } catch {
    return "bun";
  }
}

function resolvePython(candidate: string): { executable: string; prefix: string } {
  const probe = spawnSync(candidate, ["-I", "-S", "-c", "import sys; print(sys.executable); print(sys.base_prefix)"], { encoding: "utf8", timeout: 10_000 });
  const [executable = "", prefix = ""] = probe.status === 0 ? probe.stdout.trim().split("\n") : [];
  return { executable: executable || candidate, prefix: prefix || path.dirname(path.dirname(executable || "/usr/bin/python3")) };
}

export function resolveRuntimeCommands(overrides: Partial<RuntimeCommands> = {}): RuntimeCommands {
  const python = overrides.python && overrides.pythonPrefix ? undefined : resolvePython(overrides.python ?? "python3");
  return {
    bun: overrides.bun ?? resolveBun(),
    python: overrides.python ?? python?.executable ?? "python3",
    pythonPrefix: overrides.pythonPrefix ?? python?.prefix ?? "/usr",
    pythonFlags: overrides.pythonFlags ?? ["-I", "-S"],
    tsRunner: overrides.tsRunner ?? path.join(REPO_ROOT, "sdk/typescript/src/runner.ts"),
    pyRunner: overrides.pyRunner ?? path.join(REPO_ROOT, "sdk/python/podium_runner.py"),
  };
}

/** argv for an agent entry file; without `entry`, a warm runner that takes its entry from `init.entry`. */
export function agentCommand(commands: RuntimeCommands, runtime: AgentRuntime, entry?: string): [string, string[]] {
  const tail = entry === undefined ? [] : [entry];
  // --no-install: never auto-install packages at run time (bundles bring their dependencies).
  if (runtime === "typescript") return [commands.bun, ["--no-install", commands.tsRunner, ...tail]];
  return [commands.python, [...commands.pythonFlags, commands.pyRunner, ...tail]];
}

/** What an agent of `runtime` must be able to read besides its bundle: interpreter and SDK. */
export function runtimeReadOnlyPaths(commands: RuntimeCommands, runtime: AgentRuntime): string[] {
  const real = (p: string) => {
    try {
      return fs.realpathSync(p);
    } catch {
      return p;
    }
  };
  if (runtime === "typescript") {
    const paths = [path.dirname(commands.bun), path.dirname(real(commands.bun)), path.dirname(path.dirname(commands.tsRunner))];
    return paths.filter((p) => p.startsWith("/") && !p.startsWith("/usr/"));
  }
  return [commands.pythonPrefix, path.dirname(commands.pyRunner)].filter((p) => p.startsWith("/") && p !== "/usr" && !p.startsWith("/usr/"));
}

/**
 * Compiles a directory's Python files to __pycache__ ahead of time. Sandboxed agents see their SDK
 * and bundle read-only and could never write the cache themselves (start-up 35 ms instead of 16).
 * Best effort: failures only cost start-up time.
 */
export function precompilePython(commands: RuntimeCommands, dir: string): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn(commands.python, ["-I", "-S", "-m", "compileall", "-q", dir], { stdio: "ignore" });
    child.once("error", () => resolve());
    child.once("close", () => resolve());
  });
}
