/**
 * Integration fixture: a real `podium dev` server (gateway + coordinator) on port 0 with a temp
 * data dir, the examples and test bundles deployed, and small REST / WebSocket clients.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { WebSocket } from "ws";
import { createDevServer, type DevServer, type DevServerOptions } from "../../services/dev/create-dev-server.js";
import { createLogger, silentLogger } from "../../services/shared/logger.js";
import { REPO_ROOT } from "../../services/coordinator/runtime-commands.js";
import type { JsonObject } from "../../services/shared/json.js";

export const API_KEY = "test-key-0123456789";

export interface DevFixture {
  server: DevServer;
  url: string;
  dataDir: string;
  api(method: string, urlPath: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; json: JsonObject }>;
  connect(instanceId: string, query?: string): Promise<WsClient>;
  close(): Promise<void>;
}

/**
 * `options.dataDir`: a data dir the caller owns (a restart test starts a second fixture on it); it is left
 * in place by close(). Otherwise a temp dir, removed by close().
 */
export async function startDevFixture(options: Partial<DevServerOptions> = {}): Promise<DevFixture> {
  const owned = options.dataDir === undefined;
  const dataDir = options.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "podium-e2e-"));
  const agentsDir = options.agentsDir ?? path.join(REPO_ROOT, "examples");
  // PODIUM_TEST_LOG=FILE: every fixture's platform log, appended to FILE (diagnosing a failed start).
  const logFile = process.env.PODIUM_TEST_LOG;
  const logger = logFile ? createLogger({ level: "debug", write: (line) => fs.appendFileSync(logFile, line + "\n") }) : silentLogger;
  const server = await createDevServer({ port: 0, dataDir, agentsDir, apiKeys: [API_KEY], logger, ...options });
  const extra = path.join(REPO_ROOT, "test/fixtures/bundles");
  if (fs.existsSync(extra) && !options.agentsDir) {
    const { LocalRegistry } = await import("../../services/registry/local-registry.js");
    const { deployDirectory } = await import("../../services/dev/create-dev-server.js");
    await deployDirectory(new LocalRegistry({ dir: path.join(dataDir, "registry") }), extra);
  }
  const clients = new Set<WsClient>();
  return {
    server,
    url: server.url,
    dataDir,
    async api(method, urlPath, body, headers = { authorization: `Bearer ${API_KEY}` }) {
      const res = await fetch(server.url + urlPath, {
        method,
        headers: { ...headers, ...(body !== undefined && typeof body !== "string" ? { "content-type": "application/json" } : {}) },
        ...(body !== undefined ? { body: typeof body === "string" ? body : JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      return { status: res.status, json: text ? (JSON.parse(text) as JsonObject) : {} };
    },
    async connect(instanceId, query = "") {
      const client = await WsClient.open(`${server.url.replace("http", "ws")}/api/v1/instances/${instanceId}/connect?api_key=${API_KEY}${query ? "&" + query : ""}`);
      clients.add(client);
      return client;
    },
    async close() {
      for (const c of clients) c.close();
      await server.close();
      if (owned) removeDataDir(dataDir);
    },
  };
}

/**
 * Removes a test's Podium data dir. An agent's mount point can stay busy after its sandbox ended and its disk
 * was unmounted (the coordinator logs "mount point not removed"; the cause is not found yet): retried, then
 * left in the temp dir with a warning instead of failing the test's teardown.
 */
export function removeDataDir(dir: string): void {
  try {
    fs.rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EBUSY") throw err;
    process.stderr.write(`test teardown: ${dir} left behind: ${String(err)}\n`);
  }
}

/** A WebSocket client that buffers JSON frames and waits for the ones a test expects. */
export class WsClient {
  readonly frames: JsonObject[] = [];
  closed: { code: number; reason: string } | undefined;
  private waiters: (() => void)[] = [];

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (data) => {
      this.frames.push(JSON.parse(data.toString()) as JsonObject);
      this.wake();
    });
    ws.on("close", (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.wake();
    });
    ws.on("error", () => undefined); // a reset is followed by "close", which the waiters see
  }

  static open(url: string, headers: Record<string, string> = {}): Promise<WsClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers });
      ws.once("open", () => resolve(new WsClient(ws)));
      ws.once("unexpected-response", (_req, res) => reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode })));
      ws.once("error", reject);
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  /** Resolves with all frames so far once `predicate` holds for one of them. */
  async waitFor(predicate: (frame: JsonObject) => boolean, timeoutMs = 10_000): Promise<JsonObject> {
    const deadline = Date.now() + timeoutMs;
    let scanned = 0;
    for (;;) {
      // Only frames that arrived since the last look are checked: long streams stay linear.
      for (; scanned < this.frames.length; scanned++) {
        const frame = this.frames[scanned] as JsonObject;
        if (predicate(frame)) return frame;
      }
      if (this.closed) throw new Error(`socket closed (${this.closed.code}) before the expected frame; got ${JSON.stringify(this.frames).slice(0, 500)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; frames: ${JSON.stringify(this.frames).slice(0, 1000)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  waitClosed(timeoutMs = 10_000): Promise<{ code: number; reason: string }> {
    return new Promise((resolve, reject) => {
      if (this.closed) return resolve(this.closed);
      const timer = setTimeout(() => reject(new Error("socket did not close")), timeoutMs);
      this.ws.once("close", (code, reason) => {
        clearTimeout(timer);
        resolve({ code, reason: reason.toString() });
      });
    });
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
  }
}

export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
