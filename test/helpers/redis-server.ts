/**
 * A real `redis-server` (Valkey-compatible) on a free port, no persistence, for integration tests.
 * `restart()` keeps the port, so clients can reconnect; data does not survive it (--save '').
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

export const REDIS_SERVER_BIN = process.env.PODIUM_TEST_REDIS_SERVER ?? "/usr/bin/redis-server";

export interface RedisServer {
  url: string;
  port: number;
  /** Stops the server (and removes its temp dir); idempotent. */
  stop(): Promise<void>;
  /** Stops the server if running and starts a fresh, empty one on the same port. */
  restart(): Promise<void>;
  /** Stops the server but keeps the port reserved for restart(). */
  pause(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function launch(port: number, dir: string): Promise<ChildProcess> {
  const child = spawn(REDIS_SERVER_BIN, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  return new Promise((resolve, reject) => {
    let output = "";
    const timer = setTimeout(() => fail(new Error(`redis-server did not start within 10 s:\n${output}`)), 10_000);
    const fail = (error: Error): void => {
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(error);
    };
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (output.includes("Ready to accept connections")) {
        clearTimeout(timer);
        child.stdout?.off("data", onData);
        child.stdout?.resume();
        resolve(child);
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.once("error", fail);
    child.once("exit", (code) => fail(new Error(`redis-server exited with ${code} before it was ready:\n${output}`)));
  });
}

async function kill(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
  await exited;
  clearTimeout(timer);
}

export async function startRedis(): Promise<RedisServer> {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-redis-"));
  let child: ChildProcess | undefined = await launch(port, dir);
  const stopProcess = async (): Promise<void> => {
    const current = child;
    child = undefined;
    await kill(current);
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pause: stopProcess,
    async restart() {
      await stopProcess();
      child = await launch(port, dir);
    },
    async stop() {
      await stopProcess();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
