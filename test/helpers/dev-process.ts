/**
 * `podium dev` as its own OS process (`node bin/podium.js dev`), for tests that kill it (-9) and start it
 * again on the same data directory. Killed on the test process's exit whatever happens.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { PODIUM_BIN, childEnv, restCall, type RestResult } from "./cluster-processes.js";
import { REPO_ROOT } from "../../services/coordinator/runtime-commands.js";

export const DEV_API_KEY = "dev-process-key-0123456789";

export interface DevProcess {
  readonly url: string;
  readonly pid: number;
  output(): string;
  api(method: string, urlPath: string, body?: unknown): Promise<RestResult>;
  /** kill -9; resolves once it exited. */
  kill(): Promise<void>;
  /** SIGTERM (its clean shutdown), SIGKILL after `graceMs`; resolves once it exited. */
  stop(graceMs?: number): Promise<void>;
}

const running = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

export interface DevProcessOptions {
  dataDir: string;
  agentsDir: string;
  /** More environment (e.g. TMPDIR). */
  env?: Record<string, string>;
  startTimeoutMs?: number;
}

export function startDevProcess(options: DevProcessOptions): Promise<DevProcess> {
  const child = spawn(process.execPath, [PODIUM_BIN, "dev", "--port", "0", "--data", options.dataDir, "--agents", options.agentsDir, "--log-level", "warn"], {
    cwd: REPO_ROOT,
    env: childEnv({ PODIUM_API_KEY: DEV_API_KEY, ...options.env }),
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  let output = "";
  const append = (chunk: Buffer): void => {
    output += chunk.toString();
    if (output.length > 512 * 1024) output = output.slice(-256 * 1024);
  };
  child.stdout?.on("data", append);
  child.stderr?.on("data", append);
  const exited = new Promise<void>((resolve) =>
    child.once("exit", () => {
      running.delete(child);
      resolve();
    }),
  );
  const end = async (signal: NodeJS.Signals, graceMs: number): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const force = signal === "SIGKILL" ? undefined : setTimeout(() => child.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(force);
  };
  return new Promise((resolve, reject) => {
    const timeoutMs = options.startTimeoutMs ?? 30_000;
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`podium dev did not listen within ${timeoutMs} ms:\n${output.slice(-4000)}`));
    }, timeoutMs);
    const onData = (): void => {
      const match = /^podium dev listening on (http:\/\/\S+)$/m.exec(output);
      if (!match?.[1]) return;
      clearTimeout(timer);
      child.stdout?.off("data", onData);
      const url = match[1];
      resolve({
        url,
        pid: child.pid ?? 0,
        output: () => output,
        api: (method, urlPath, body) => restCall(url, method, urlPath, body, DEV_API_KEY),
        kill: () => end("SIGKILL", 0),
        stop: (graceMs = 30_000) => end("SIGTERM", graceMs),
      });
    };
    child.stdout?.on("data", onData);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`podium dev exited before it listened:\n${output.slice(-4000)}`));
    });
  });
}
