/**
 * A real cluster for end-to-end tests and benchmarks: `redis-server` (startRedis), an S3 endpoint
 * (s3rver, in-process: startS3), and N coordinators and M gateways each started as its own OS process
 * with `node bin/podium.js coordinator|gateway` on port 0. Every process is tracked: close() kills what
 * is left (SIGKILL), and a process "exit" hook does the same if the test runner dies first.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { REPO_ROOT } from "../../services/coordinator/runtime-commands.js";
import type { JsonObject } from "../../services/shared/json.js";
import { freePort, startRedis, type RedisServer } from "./redis-server.js";
import { startS3, type S3Server } from "./s3-server.js";
import { WsClient, removeDataDir } from "./dev-fixture.js";
import { packBundle } from "../../services/registry/bundle-archive.js";

export const PODIUM_BIN = path.join(REPO_ROOT, "bin/podium.js");
export const CLUSTER_API_KEY = "cluster-e2e-key-0123456789";
export const CLUSTER_SECRET = "cluster-e2e-secret-0123456789";

export type PodiumRole = "gateway" | "coordinator";

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface PodiumProcess {
  readonly role: PodiumRole;
  /** The coordinator id (`--id`), or the gateway's name. */
  readonly id: string;
  readonly pid: number;
  /** http://127.0.0.1:PORT from the "listening on" line. */
  readonly url: string;
  readonly dataDir: string;
  readonly exited: Promise<ProcessExit>;
  readonly alive: boolean;
  /** stdout + stderr so far (the last 256 KiB). */
  output(): string;
  /** Sends `signal` and resolves when the process has exited. SIGTERM falls back to SIGKILL after `graceMs`. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<ProcessExit>;
  /** kill -9. */
  kill(): Promise<ProcessExit>;
  /** Sends a signal and returns at once (e.g. SIGSTOP to freeze the process with its sockets open). */
  signal(signal: NodeJS.Signals): void;
  /** True when the process exited without being stopped or signalled through this object (a crash). */
  readonly crashed: boolean;
}

/** Every process started by this module and still running, killed on exit whatever happens. */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const child of running) {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
  });
}

/** The environment of a child: the parent's minus PODIUM_* / NODE_OPTIONS (jest's VM flags), plus `extra`. */
export function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (key.startsWith("PODIUM_") || key === "NODE_OPTIONS" || key.startsWith("AWS_")) continue;
    env[key] = value;
  }
  return { ...env, ...extra };
}

export interface SpawnPodiumOptions {
  role: PodiumRole;
  id: string;
  args: string[];
  env: Record<string, string>;
  dataDir?: string;
  /** How long to wait for the "listening on" line. Default 30 s. */
  startTimeoutMs?: number;
}

/** Starts `node bin/podium.js <role> …` and resolves once it prints its URL. */
export function spawnPodium(options: SpawnPodiumOptions): Promise<PodiumProcess> {
  installExitHook();
  const child = spawn(process.execPath, [PODIUM_BIN, options.role, ...options.args], {
    cwd: REPO_ROOT,
    env: childEnv(options.env),
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  let output = "";
  let stdout = "";
  const append = (chunk: Buffer): void => {
    output += chunk.toString();
    if (output.length > 512 * 1024) output = output.slice(-256 * 1024);
  };
  child.stdout?.on("data", append);
  child.stderr?.on("data", append);
  let asked = false;
  let crashed = false;
  const exited = new Promise<ProcessExit>((resolve) => {
    child.once("exit", (code, signal) => {
      running.delete(child);
      crashed = !asked;
      resolve({ code, signal });
    });
  });
  const waitExit = async (signal: NodeJS.Signals, graceMs: number): Promise<ProcessExit> => {
    if (child.exitCode !== null || child.signalCode !== null) return exited;
    asked = true;
    child.kill(signal);
    const force = signal === "SIGKILL" ? undefined : setTimeout(() => child.kill("SIGKILL"), graceMs);
    const result = await exited;
    clearTimeout(force);
    return result;
  };
  return new Promise((resolve, reject) => {
    const timeoutMs = options.startTimeoutMs ?? 30_000;
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${options.role} ${options.id} did not print its URL within ${timeoutMs} ms:\n${output.slice(-4000)}`));
    }, timeoutMs);
    // The start-up line on stdout ("podium gateway listening on http://…"), not the JSON logs on stderr.
    const onData = (chunk: Buffer): void => {
      stdout += chunk.toString();
      const match = /^podium (?:gateway|coordinator)\b.* listening on (http:\/\/\S+)$/m.exec(stdout);
      if (!match?.[1]) return;
      clearTimeout(timer);
      child.stdout?.off("data", onData);
      const url = match[1];
      resolve({
        role: options.role,
        id: options.id,
        pid: child.pid ?? 0,
        url,
        dataDir: options.dataDir ?? "",
        exited,
        get alive() {
          return child.exitCode === null && child.signalCode === null;
        },
        output: () => output,
        stop: (signal = "SIGTERM", graceMs = 30_000) => waitExit(signal, graceMs),
        kill: () => waitExit("SIGKILL", 0),
        signal: (signal) => {
          asked = true;
          child.kill(signal);
        },
        get crashed() {
          return crashed;
        },
      });
    };
    child.stdout?.on("data", onData);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${options.role} ${options.id} exited (${code ?? signal}) before it listened:\n${output.slice(-4000)}`));
    });
  });
}

export interface ClusterOptions {
  coordinators?: number;
  gateways?: number;
  /** Per-coordinator capacity (--capacity). */
  capacity?: number;
  /** More environment for every process. */
  env?: Record<string, string>;
  /**
   * Put a TCP proxy between gateways and each coordinator (its advertised address), so a test can cut
   * the connections with `cutLinks(id)` while both processes stay up (a network blip).
   */
  proxyCoordinators?: boolean;
  /** Coordinators replicate their agents to the S3 endpoint with Litestream (prefix "replicas/"). */
  replication?: boolean;
  /** Each coordinator reaches S3 through a proxy of its own, which `s3Link(id)` can stall. */
  proxyS3?: boolean;
}

export interface RestResult {
  status: number;
  json: JsonObject;
}

export interface TestCluster {
  readonly redis: RedisServer;
  readonly s3: S3Server;
  readonly apiKey: string;
  readonly secret: string;
  /** Every coordinator started, including added and stopped ones (see `alive`). */
  readonly coordinators: PodiumProcess[];
  readonly gateways: PodiumProcess[];
  /** Starts one more coordinator (id `coord-<n>` unless given). */
  addCoordinator(id?: string): Promise<PodiumProcess>;
  addGateway(id?: string): Promise<PodiumProcess>;
  /** With `proxyCoordinators`: destroys every open gateway connection to this coordinator; returns how many. */
  cutLinks(coordinatorId: string): number;
  /** With `proxyS3`: the coordinator's link to S3, to stall (pause) and bring back (resume). */
  s3Link(coordinatorId: string): { pause(): void; resume(): void };
  /** A REST call with the API key to `base` (a gateway URL). */
  api(base: string, method: string, urlPath: string, body?: unknown): Promise<RestResult>;
  /** A WebSocket on `/api/v1/instances/{id}/connect` through `base` (closed by close()). */
  connect(base: string, instanceId: string, query?: string): Promise<WsClient>;
  /** Kills every process (SIGKILL), stops Valkey and S3, removes temp dirs. Idempotent. */
  close(): Promise<void>;
}

/** Starts Valkey, S3, then the coordinators and gateways (in parallel). On failure, everything started is cleaned up. */
export async function startCluster(options: ClusterOptions = {}): Promise<TestCluster> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "podium-cluster-"));
  // Coordinators run agents as unprivileged uids (as root): the data dirs' parents must be searchable by them.
  fs.chmodSync(root, 0o711);
  const processes: PodiumProcess[] = [];
  const coordinators: PodiumProcess[] = [];
  const gateways: PodiumProcess[] = [];
  const sockets = new Set<WsClient>();
  let redis: RedisServer | undefined;
  let s3: S3Server | undefined;
  let closed = false;
  const counter = { coordinator: 0, gateway: 0 };

  const proxies = new Map<string, TcpProxy>();
  const s3Proxies = new Map<string, TcpProxy>();
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    for (const proxy of [...proxies.values(), ...s3Proxies.values()]) proxy.close();
    for (const ws of sockets) ws.close();
    for (const p of processes.filter((p) => p.crashed)) process.stderr.write(`${p.role} ${p.id} exited by itself; its output:\n${p.output().slice(-8000)}\n`);
    await Promise.all(processes.map((p) => p.kill()));
    // Killed coordinators' Litestream processes outlive them (their final sync): stop them too.
    for (const pid of processesUnder(root)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
    await redis?.stop();
    await s3?.stop();
    unmountLeftovers(root);
    // Retried: a killed coordinator's agent processes may still be writing as they die.
    removeDataDir(root);
  };

  try {
    [redis, s3] = await Promise.all([startRedis(), startS3()]);
    const shared = {
      PODIUM_CLUSTER_SECRET: CLUSTER_SECRET,
      PODIUM_VALKEY_URL: redis.url,
      PODIUM_S3_BUCKET: s3.bucket,
      PODIUM_S3_ENDPOINT: s3.endpoint,
      PODIUM_S3_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: "S3RVER",
      AWS_SECRET_ACCESS_KEY: "S3RVER",
      ...(options.replication ? { PODIUM_REPLICATION_BUCKET: s3.bucket, PODIUM_REPLICATION_PREFIX: "replicas/" } : {}),
      // A busy CI host once kept an agent from answering `init` for 12 s: starts get 45 s here (default 15 s).
      PODIUM_AGENT_LIMITS: "start_timeout_ms=45000",
      ...options.env,
    };
    const addCoordinator = async (id?: string): Promise<PodiumProcess> => {
      const coordinatorId = id ?? `coord-${++counter.coordinator}`;
      const dataDir = path.join(root, coordinatorId);
      fs.mkdirSync(dataDir, { recursive: true });
      const args = ["--port", "0", "--host", "127.0.0.1", "--data", dataDir, "--id", coordinatorId];
      if (options.proxyCoordinators) {
        const port = await freePort();
        const proxy = await startTcpProxy(port);
        proxies.set(coordinatorId, proxy);
        args.splice(1, 1, String(port));
        args.push("--advertise", `http://127.0.0.1:${proxy.port}`);
      }
      if (options.capacity !== undefined) args.push("--capacity", String(options.capacity));
      let env = shared;
      if (options.proxyS3 && redis && s3) {
        const s3Proxy = s3Proxies.get(coordinatorId) ?? (await startTcpProxy(Number(new URL(s3.endpoint).port)));
        s3Proxies.set(coordinatorId, s3Proxy);
        env = { ...shared, PODIUM_S3_ENDPOINT: `http://127.0.0.1:${s3Proxy.port}` };
      }
      const proc = await spawnPodium({ role: "coordinator", id: coordinatorId, args, env, dataDir });
      processes.push(proc);
      coordinators.push(proc);
      return proc;
    };
    const addGateway = async (id?: string): Promise<PodiumProcess> => {
      const name = id ?? `gateway-${String.fromCharCode(96 + ++counter.gateway)}`;
      const proc = await spawnPodium({ role: "gateway", id: name, args: ["--port", "0", "--host", "127.0.0.1"], env: { ...shared, PODIUM_API_KEY: CLUSTER_API_KEY } });
      processes.push(proc);
      gateways.push(proc);
      return proc;
    };
    const coordinatorIds = Array.from({ length: options.coordinators ?? 3 }, () => `coord-${++counter.coordinator}`);
    const gatewayIds = Array.from({ length: options.gateways ?? 2 }, () => `gateway-${String.fromCharCode(96 + ++counter.gateway)}`);
    await Promise.all([...coordinatorIds.map((id) => addCoordinator(id)), ...gatewayIds.map((id) => addGateway(id))]);
    const byId = (a: PodiumProcess, b: PodiumProcess): number => (a.id < b.id ? -1 : 1);
    coordinators.sort(byId);
    gateways.sort(byId);
    const liveRedis = redis;
    const liveS3 = s3;
    return {
      redis: liveRedis,
      s3: liveS3,
      apiKey: CLUSTER_API_KEY,
      secret: CLUSTER_SECRET,
      coordinators,
      gateways,
      addCoordinator,
      addGateway,
      cutLinks(coordinatorId) {
        const proxy = proxies.get(coordinatorId);
        if (!proxy) throw new Error(`coordinator ${coordinatorId} is not behind a proxy (startCluster({ proxyCoordinators: true }))`);
        return proxy.cut();
      },
      s3Link(coordinatorId) {
        const proxy = s3Proxies.get(coordinatorId);
        if (!proxy) throw new Error(`coordinator ${coordinatorId} does not reach S3 through a proxy (startCluster({ proxyS3: true }))`);
        return proxy;
      },
      api: (base, method, urlPath, body) => restCall(base, method, urlPath, body),
      async connect(base, instanceId, query = "") {
        const ws = await WsClient.open(`${base.replace(/^http/, "ws")}/api/v1/instances/${instanceId}/connect?api_key=${CLUSTER_API_KEY}${query ? "&" + query : ""}`);
        sockets.add(ws);
        return ws;
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/**
 * Agent volumes a killed coordinator left mounted under `root` (it could not unmount them), detached
 * deepest first so the temp dir can be removed.
 */
function unmountLeftovers(root: string): void {
  let table: string;
  try {
    table = fs.readFileSync("/proc/self/mounts", "utf8");
  } catch {
    return;
  }
  const points = table
    .split("\n")
    .map((line) => (line.split(" ")[1] ?? "").replace(/\\([0-7]{3})/g, (_m, octal: string) => String.fromCharCode(parseInt(octal, 8))))
    .filter((point) => point.startsWith(root + path.sep))
    .sort((a, b) => b.length - a.length);
  for (const point of points) spawnSync("umount", ["-l", "--", point], { stdio: "ignore" });
}

interface TcpProxy {
  port: number;
  /** Destroys every open connection (both sides); new connections still work. Returns how many were open. */
  cut(): number;
  /** Holds every byte (both ways, new connections too) until resume(): a stalled link, sockets kept open. */
  pause(): void;
  resume(): void;
  close(): void;
}

/** A TCP proxy on a free port to 127.0.0.1:`target`. */
async function startTcpProxy(target: number): Promise<TcpProxy> {
  const pairs = new Set<[net.Socket, net.Socket]>();
  // While paused, what either side sends waits here (in order; null = that side ended).
  let held: [net.Socket, Buffer | null][] | undefined;
  const deliver = (to: net.Socket, chunk: Buffer | null): void => {
    if (held) held.push([to, chunk]);
    else if (chunk) to.write(chunk);
    else to.end();
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(target, "127.0.0.1");
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    const drop = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const [from, to] of [pair, [upstream, client] as const]) {
      from.setNoDelay(true);
      from.on("error", drop);
      from.on("close", drop);
      from.on("data", (chunk: Buffer) => deliver(to, chunk));
      from.on("end", () => deliver(to, null));
    }
  });
  server.on("error", () => undefined);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  const cut = (): number => {
    const count = pairs.size;
    for (const [client, upstream] of [...pairs]) {
      client.destroy();
      upstream.destroy();
    }
    pairs.clear();
    return count;
  };
  return {
    port,
    cut,
    pause() {
      held ??= [];
    },
    resume() {
      const waiting = held ?? [];
      held = undefined;
      for (const [to, chunk] of waiting) if (!to.destroyed) deliver(to, chunk);
    },
    close() {
      held = undefined;
      cut();
      server.close();
    },
  };
}

/** REST with the cluster's API key; the body is JSON unless it is a Buffer (sent as gzip). */
export async function restCall(base: string, method: string, urlPath: string, body?: unknown, apiKey = CLUSTER_API_KEY): Promise<RestResult> {
  const headers: Record<string, string> = { authorization: `Bearer ${apiKey}` };
  let payload: string | Buffer | undefined;
  if (Buffer.isBuffer(body)) {
    headers["content-type"] = "application/gzip";
    payload = body;
  } else if (body !== undefined) {
    headers["content-type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const res = await fetch(base + urlPath, { method, headers, ...(payload !== undefined ? { body: payload } : {}) });
  const text = await res.text();
  let json: JsonObject = {};
  try {
    json = text ? (JSON.parse(text) as JsonObject) : {};
  } catch {
    json = { raw: text };
  }
  return { status: res.status, json };
}

/** Runs `podium deploy DIR --url URL` as a user would; resolves with its exit code and JSON output. */
export function deployWithCli(dir: string, url: string, apiKey = CLUSTER_API_KEY): Promise<{ code: number | null; result: JsonObject; stderr: string }> {
  installExitHook();
  const child = spawn(process.execPath, [PODIUM_BIN, "deploy", dir, "--url", url], { cwd: REPO_ROOT, env: childEnv({ PODIUM_API_KEY: apiKey }), stdio: ["ignore", "pipe", "pipe"] });
  running.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => {
    child.once("exit", (code) => {
      running.delete(child);
      let result: JsonObject = {};
      try {
        result = JSON.parse(stdout) as JsonObject;
      } catch {
        result = { raw: stdout };
      }
      resolve({ code, result, stderr });
    });
  });
}

/** Pids of the processes whose command line names something under `dir` (e.g. a coordinator's Litestream children). */
export function processesUnder(dir: string): number[] {
  const pids: number[] = [];
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${name}/cmdline`, "utf8").includes(dir)) pids.push(Number(name));
    } catch {
      // gone
    }
  }
  return pids;
}

/** True while a process with this pid exists (and is not a zombie we could still reap). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return true;
  }
}

/** Polls `fn` until it returns a value; resolves with it and the elapsed ms. */
export async function until<T>(fn: () => Promise<T | undefined>, what: string, timeoutMs = 15_000, intervalMs = 25): Promise<{ value: T; ms: number }> {
  const start = Date.now();
  for (;;) {
    const value = await fn();
    if (value !== undefined) return { value, ms: Date.now() - start };
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Two replicating coordinators and one gateway, with test bundle `bundle` deployed through the gateway. */
export async function startReplicatedCluster(bundle: string): Promise<{ cluster: TestCluster; gateway: string }> {
  const cluster = await startCluster({ coordinators: 2, gateways: 1, replication: true });
  const gateway = (cluster.gateways[0] as PodiumProcess).url;
  const deployed = await cluster.api(gateway, "POST", "/api/v1/deployments", await packBundle(path.join(REPO_ROOT, "test/fixtures/bundles", bundle)));
  if (deployed.status !== 201) {
    await cluster.close();
    throw new Error(`deploying ${bundle} failed: ${deployed.status} ${JSON.stringify(deployed.json)}`);
  }
  return { cluster, gateway };
}
