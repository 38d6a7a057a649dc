/**
 * Litestream replication (services/replication) against a real S3 API (s3rver, in this process,
 * behind a request-counting proxy). Reported, all measured in this run:
 * - lag*: age of a local change when Litestream reported it in S3 (p50/p99/max), one agent writing a
 *   turn (all four databases) every 50 ms, with the default timings (monitor 1 s, sync 1 s) and with a
 *   250 ms monitor interval; busyRequestsPerAgentHour: S3 requests in that window, per hour;
 * - idle*: four agents that wrote once, then nothing: S3 requests in a window starting 65 s after the
 *   last write (after Litestream's one time-based checkpoint), extrapolated to an agent-hour;
 * - restore10MB* / restore100MB*: restoreAgent() of an agent of that size (databases + workspace);
 * - restart*: the cost of restarting one Litestream process that replicates N databases (what a
 *   shared per-coordinator process would pay on every agent added or removed): stop, time until every
 *   database knows its replica position again, S3 requests;
 * - pss*: proportional memory (PSS) of one process with 40 databases vs 10 per-agent processes with 4.
 * Run: node --import tsx bench/replication-bench.ts
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import Database from "better-sqlite3";
import { startS3, type S3Server } from "../test/helpers/s3-server.js";
import { startS3CountingProxy, type S3CountingProxy } from "../test/replication/s3-counting-proxy.js";
import { AgentWriter } from "../test/replication/replication-fixture.js";
import { LitestreamSupervisor, type SupervisedDatabase } from "../services/replication/litestream-supervisor.js";
import { agentDatabasePaths, compileS3Settings, compileTimings, replicaPath, type ReplicationS3Settings, type ReplicationTimings } from "../services/replication/replication-options.js";
import { restoreAgent } from "../services/replication/agent-restore.js";
import { silentLogger } from "../services/shared/logger.js";
import { percentile, round, type BenchResults } from "./bench-util.js";

const LAG_SECONDS = 20;
const TURN_EVERY_MS = 50;
const IDLE_AGENTS = 4;
const IDLE_SETTLE_MS = 65_000;
const IDLE_WINDOW_MS = 30_000;

interface Env {
  s3: S3Server;
  proxy: S3CountingProxy;
  settings: ReplicationS3Settings;
  root: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("bench: timed out");
    await sleep(20);
  }
}

function supervise(env: Env, name: string, databases: SupervisedDatabase[], timings: ReplicationTimings = {}, onCovered?: (db: string, ageMs: number) => void): LitestreamSupervisor {
  return LitestreamSupervisor.start({
    name,
    databases,
    s3: compileS3Settings(env.settings),
    timings: compileTimings(timings),
    configDir: path.join(env.root, "litestream"),
    logger: silentLogger,
    probeIntervalMs: 20,
    ...(onCovered ? { onCovered } : {}),
  });
}

function agentDatabases(env: Env, agentId: string, dir: string): SupervisedDatabase[] {
  const s3 = compileS3Settings(env.settings);
  return agentDatabasePaths(dir).map((db) => ({ name: db.name, path: db.path, replicaPath: replicaPath(s3, agentId, db.name) }));
}

async function measureLag(env: Env, label: string, timings: ReplicationTimings): Promise<BenchResults> {
  const agentId = `lag-${label}`;
  const dir = path.join(env.root, agentId);
  const writer = new AgentWriter(dir);
  writer.init();
  const ages: number[] = [];
  let collecting = false;
  const supervisor = supervise(env, agentId, agentDatabases(env, agentId, dir), timings, (_db, age) => {
    if (collecting) ages.push(age);
  });
  try {
    await until(() => supervisor.caughtUp, 20_000);
    collecting = true;
    const since = Date.now();
    for (let i = 0; Date.now() - since < LAG_SECONDS * 1000; i++) {
      writer.writeTurn(`w${i}`);
      await sleep(TURN_EVERY_MS);
    }
    const windowMs = Date.now() - since;
    const requests = env.proxy.count({ pathIncludes: `agents/${agentId}/`, since });
    await until(() => supervisor.caughtUp, 20_000);
    return {
      [`lag${label}P50Ms`]: percentile(ages, 50),
      [`lag${label}P99Ms`]: percentile(ages, 99),
      [`lag${label}MaxMs`]: percentile(ages, 100),
      [`busyRequestsPerAgentHour${label}`]: Math.round((requests * 3600_000) / windowMs),
    };
  } finally {
    await supervisor.stop({ graceful: true });
    writer.close();
  }
}

async function measureIdle(env: Env): Promise<BenchResults> {
  const agents = Array.from({ length: IDLE_AGENTS }, (_, i) => {
    const agentId = `idle-${i}`;
    const writer = new AgentWriter(path.join(env.root, agentId));
    writer.init();
    writer.writeTurn("only");
    return { agentId, writer, supervisor: supervise(env, agentId, agentDatabases(env, agentId, writer.dir)) };
  });
  try {
    await until(() => agents.every((a) => a.supervisor.caughtUp), 30_000);
    const lastWrite = Date.now();
    await sleep(IDLE_SETTLE_MS);
    const since = Date.now();
    await sleep(IDLE_WINDOW_MS);
    const settle = env.proxy.requests.filter((r) => r.at >= lastWrite && r.at < since && r.path.includes("agents/idle-"));
    const window = env.proxy.requests.filter((r) => r.at >= since && r.path.includes("agents/idle-"));
    const perAgentHour = (n: number) => (n * 3600_000) / IDLE_WINDOW_MS / IDLE_AGENTS;
    return {
      idleOneOffPutsPerAgentAfterLastWrite: settle.filter((r) => r.operation === "PUT").length / IDLE_AGENTS,
      idlePutsPerAgentHour: perAgentHour(window.filter((r) => r.operation === "PUT").length),
      idleRequestsPerAgentHour: perAgentHour(window.length),
    };
  } finally {
    await Promise.all(agents.map((a) => a.supervisor.stop({ graceful: true })));
    for (const a of agents) a.writer.close();
  }
}

/** An agent of about `megabytes` MB: half message history, half workspace files (random text). */
async function measureRestore(env: Env, megabytes: number): Promise<BenchResults> {
  const agentId = `big-${megabytes}`;
  const dir = path.join(env.root, agentId);
  const writer = new AgentWriter(dir);
  writer.init();
  const half = (megabytes * 1024 * 1024) / 2;
  const text = (bytes: number) =>
    randomBytes(Math.ceil((bytes * 3) / 4))
      .toString("base64")
      .slice(0, bytes);
  const rows = Array.from({ length: Math.ceil(half / 4096) }, (_, i) => ({
    direction: "inbound" as const,
    instanceId: "inst_bench",
    turn: i,
    messageType: "message",
    content: { text: text(4000) },
    timestamp: Date.now(),
  }));
  for (let i = 0; i < rows.length; i += 500) writer.store.messages.appendMany(rows.slice(i, i + 500));
  const fileBytes = 256 * 1024;
  for (let i = 0; i * fileBytes < half; i++) {
    fs.mkdirSync(path.join(writer.workspace, `dir${i % 10}`), { recursive: true });
    fs.writeFileSync(path.join(writer.workspace, `dir${i % 10}`, `file${i}.txt`), text(fileBytes));
  }
  writer.chronicle.capture();
  const supervisor = supervise(env, agentId, agentDatabases(env, agentId, dir));
  const replicateStarted = performance.now();
  try {
    await until(() => supervisor.caughtUp, 300_000);
  } finally {
    await supervisor.stop({ graceful: true });
    writer.close();
  }
  const replicateMs = performance.now() - replicateStarted;
  const dbBytes = agentDatabasePaths(dir).reduce((sum, db) => sum + fs.statSync(db.path).size, 0);
  const target = path.join(env.root, `${agentId}-restored`);
  const result = await restoreAgent({ agentId, targetDir: target, s3: env.settings });
  const dbMs = Math.max(...result.databases.map((d) => d.ms));
  return {
    [`restore${megabytes}MBDatabasesMB`]: round(dbBytes / 1e6, 1),
    [`restore${megabytes}MBInitialReplicationMs`]: Math.round(replicateMs),
    [`restore${megabytes}MBTotalMs`]: result.ms,
    [`restore${megabytes}MBDatabasesMs`]: dbMs,
    [`restore${megabytes}MBWorkspaceFiles`]: result.workspace?.files ?? 0,
  };
}

function smallDatabases(env: Env, label: string, n: number): SupervisedDatabase[] {
  const s3 = compileS3Settings(env.settings);
  const dir = path.join(env.root, label);
  fs.mkdirSync(dir, { recursive: true });
  return Array.from({ length: n }, (_, i) => {
    const file = path.join(dir, `db${i}.db`);
    const db = new Database(file);
    db.pragma("journal_mode = WAL");
    db.exec("CREATE TABLE IF NOT EXISTS t (x BLOB)");
    db.prepare("INSERT INTO t VALUES (randomblob(2000))").run();
    db.close();
    return { name: `db${i}.db`, path: file, replicaPath: replicaPath(s3, label, `db${i}.db`) };
  });
}

async function measureRestart(env: Env, n: number): Promise<BenchResults> {
  const databases = smallDatabases(env, `restart-${n}`, n);
  const first = supervise(env, `restart-${n}`, databases);
  await until(() => first.caughtUp, 60_000);
  const stopStarted = performance.now();
  await first.stop({ graceful: true });
  const stopMs = performance.now() - stopStarted;
  const since = Date.now();
  const started = performance.now();
  const second = supervise(env, `restart-${n}`, databases);
  try {
    await until(() => second.status().databases.every((d) => d.position !== undefined) && second.caughtUp, 60_000);
    const readyMs = performance.now() - started;
    await sleep(500);
    return {
      [`restart${n}DbStopMs`]: Math.round(stopMs),
      [`restart${n}DbResumeMs`]: Math.round(readyMs),
      [`restart${n}DbS3Requests`]: env.proxy.count({ pathIncludes: `agents/restart-${n}/`, since }),
    };
  } finally {
    await second.stop({ graceful: true });
  }
}

function pssKb(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  const text = fs.readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  return Number(/Pss:\s+(\d+)/.exec(text)?.[1] ?? NaN);
}

async function measureMemory(env: Env): Promise<BenchResults> {
  const shared = supervise(env, "mem-shared", smallDatabases(env, "mem-shared", 40));
  const perAgent = Array.from({ length: 10 }, (_, i) => supervise(env, `mem-agent-${i}`, smallDatabases(env, `mem-agent-${i}`, 4)));
  try {
    await until(() => shared.caughtUp && perAgent.every((s) => s.caughtUp), 60_000);
    await sleep(10_000);
    return {
      pssOneProcess40DbMB: round(pssKb(shared.pid) / 1024, 1),
      pssTenProcesses4DbMB: round(perAgent.reduce((sum, s) => sum + pssKb(s.pid), 0) / 1024, 1),
    };
  } finally {
    await Promise.all([shared, ...perAgent].map((s) => s.stop({ graceful: true })));
  }
}

export async function runReplicationBench(): Promise<BenchResults> {
  const s3 = await startS3();
  const proxy = await startS3CountingProxy(s3.endpoint);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "podium-bench-"));
  const env: Env = { s3, proxy, root, settings: { bucket: s3.bucket, endpoint: proxy.endpoint, credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } } };
  try {
    return {
      ...(await measureLag(env, "Default", {})),
      ...(await measureLag(env, "Monitor250", { monitorIntervalMs: 250 })),
      ...(await measureRestore(env, 10)),
      ...(await measureRestore(env, 100)),
      ...(await measureRestart(env, 1)),
      ...(await measureRestart(env, 10)),
      ...(await measureRestart(env, 50)),
      ...(await measureMemory(env)),
      ...(await measureIdle(env)),
    };
  } finally {
    await proxy.close();
    await s3.stop();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runReplicationBench().then(
    (result) => {
      for (const [key, value] of Object.entries(result)) console.log(`${key.padEnd(40)} ${value}`);
    },
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
