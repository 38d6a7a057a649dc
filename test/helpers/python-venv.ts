/**
 * A fresh Python virtual environment in a temp dir with packages installed by its own pip, the way
 * a user sets one up (`python3 -m venv`, `pip install ...`). pip uses the machine's configured
 * indexes (offline CI: a local mirror); failed index lookups are retried once, not five times with
 * back-off, so an unreachable default index costs nothing.
 *
 *   const venv = await createPythonVenv(["./sdk/python", "mypy"]);
 *   await venv.run(venv.python, ["-c", "import podium_agent"]);
 *   venv.remove();
 */
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export interface RunResult {
  stdout: string;
  stderr: string;
  /** Exit code; null when a signal ended the process. */
  code: number | null;
}

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
}

export interface PythonVenv {
  /** The venv's directory (also a scratch dir: put generated files here; remove() deletes it all). */
  readonly dir: string;
  /** The venv's python. */
  readonly python: string;
  /** Path of a command the venv installed (bin/NAME). */
  bin(name: string): string;
  /** Runs a command to its end; never rejects on a non-zero exit (see `code`). */
  run(command: string, args: readonly string[], options?: RunOptions): Promise<RunResult>;
  remove(): void;
}

export class PythonSetupError extends Error {
  constructor(
    message: string,
    readonly output: string,
  ) {
    super(`${message}\n${output.slice(-3000)}`);
    this.name = "PythonSetupError";
  }
}

function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      {
        cwd: options.cwd,
        env: { ...process.env, ...options.env },
        timeout: options.timeoutMs ?? 120_000,
        killSignal: "SIGKILL",
        maxBuffer: 64 * 1024 * 1024,
        encoding: "utf8",
      },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== "number" && error.killed !== true && error.signal == null) {
          reject(error); // could not start the command at all (ENOENT, ...)
          return;
        }
        resolve({ stdout, stderr, code: error ? (typeof error.code === "number" ? error.code : null) : 0 });
      },
    );
  });
}

const PIP_ENV: Record<string, string> = {
  PIP_RETRIES: process.env.PIP_RETRIES ?? "1",
  PIP_NO_INPUT: "1",
  PIP_DISABLE_PIP_VERSION_CHECK: "1",
  PYTHONDONTWRITEBYTECODE: "1",
};

/** Creates a venv with `python3 -m venv` and pip-installs `packages` (names or paths) into it. */
export async function createPythonVenv(packages: readonly string[], python = "python3"): Promise<PythonVenv> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-venv-"));
  const remove = () => fs.rmSync(dir, { recursive: true, force: true });
  try {
    const created = await run(python, ["-m", "venv", dir], { timeoutMs: 120_000 });
    if (created.code !== 0) throw new PythonSetupError(`${python} -m venv failed (Debian: apt-get install python3-venv)`, created.stderr);
    const venvPython = path.join(dir, "bin", "python");
    if (packages.length > 0) {
      const installed = await run(venvPython, ["-m", "pip", "install", "--quiet", ...packages], { env: PIP_ENV, timeoutMs: 240_000 });
      if (installed.code !== 0) throw new PythonSetupError(`pip install ${packages.join(" ")} failed`, installed.stdout + installed.stderr);
    }
    return {
      dir,
      python: venvPython,
      bin: (name) => path.join(dir, "bin", name),
      run: (command, args, options = {}) => run(command, args, { ...options, env: { ...PIP_ENV, ...options.env } }),
      remove,
    };
  } catch (error) {
    remove();
    throw error;
  }
}
