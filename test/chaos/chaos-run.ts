/**
 * The chaos run (issue 12): a replicated cluster of real processes (redis-server, s3rver, 3 coordinators
 * replicating with Litestream, 2 gateways), N clients each conversing with its own named agent
 * (chaos-client.ts), and a fault loop that, in turn: kills -9 a random agent's processes, kills -9 a
 * random coordinator and starts it again (same id, same data dir), restarts Valkey (empty), and takes
 * S3 away for a few seconds. Then the faults stop, every client drains (its last message ends), and
 * chaos-check.ts checks the invariants. `npm run chaos` prints the figures (test/chaos/main.ts); a short
 * run is part of `npm test` (test/cluster-e2e/chaos.test.ts).
 */
import fs from "node:fs";
import path from "node:path";
import { REPO_ROOT } from "../../services/coordinator/runtime-commands.js";
import { packBundle } from "../../services/registry/bundle-archive.js";
import type { JsonObject } from "../../services/shared/json.js";
import { agentProcesses } from "../helpers/agent-processes.js";
import { startCluster, until, type PodiumProcess, type TestCluster } from "../helpers/cluster-processes.js";
import { readMessages } from "../helpers/delivery-check.js";
import { checkDelivery, checkStreams, describePhantoms, wronglyDeclaredLost, type CoordinatorLife, type DeliveryFigures, type InvariantFigures, type StreamFigures } from "./chaos-check.js";
import { ChaosClient } from "./chaos-client.js";

export type FaultKind = "agent" | "coordinator" | "valkey" | "s3";
const FAULTS: FaultKind[] = ["agent", "coordinator", "valkey", "s3"];

export interface ChaosOptions {
  clients?: number;
  /** How long faults are injected. */
  durationMs?: number;
  /** Pause between two faults. */
  faultEveryMs?: number;
  /** How long S3 stays away. */
  s3OutageMs?: number;
  /** Between a coordinator's kill and its restart. */
  coordinatorDownMs?: number;
  /** The agent's work per turn. */
  delayMs?: number;
  /** After the faults: how long clients may take for their last message to end. */
  drainMs?: number;
  /** The platform processes' log level (their output is in `logDir`). Default info. */
  logLevel?: string;
  log?: (line: string) => void;
  /** Where to write every process's output when the run ends (for a post-mortem). */
  logDir?: string;
}

export interface ChaosReport extends InvariantFigures {
  clients: number;
  durationMs: number;
  faults: Record<FaultKind, number>;
  /** The longest a client went without progress (an acknowledgement or a turn's end), ms. */
  longestOutageMs: number;
  /** Client requests answered otherwise than success (then retried), by HTTP status (0: no answer). */
  refusals: Record<string, number>;
  instancesStarted: number;
  turnsTimedOut: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const pick = <T>(items: T[]): T | undefined => items[Math.floor(Math.random() * items.length)];

export async function runChaos(options: ChaosOptions = {}): Promise<ChaosReport> {
  const clientCount = options.clients ?? 50;
  const durationMs = options.durationMs ?? 120_000;
  const log = options.log ?? (() => undefined);
  const cluster = await startCluster({ coordinators: 3, gateways: 2, replication: true, env: { PODIUM_LOG_LEVEL: options.logLevel ?? "info" } });
  try {
    const gateways = cluster.gateways.map((g) => g.url);
    const deployed = await cluster.api(gateways[0] as string, "POST", "/api/v1/deployments", await packBundle(path.join(REPO_ROOT, "test/fixtures/bundles/durable-ts")));
    if (deployed.status >= 300) throw new Error(`deploying durable-ts: ${deployed.status} ${JSON.stringify(deployed.json)}`);
    const lives: CoordinatorLife[] = cluster.coordinators.map((c) => ({ id: c.id, startedAt: Date.now() }));
    // A coordinator that exits without being killed by a fault crashed: said at once, with its last words.
    const crashed: string[] = [];
    const watched = new Set<PodiumProcess>();
    const watch = (): void => {
      for (const coordinator of cluster.coordinators.filter((c) => !watched.has(c))) {
        watched.add(coordinator);
        void coordinator.exited.then((exit) => {
          if (!coordinator.crashed) return;
          crashed.push(`${coordinator.id} (pid ${coordinator.pid}, ${exit.signal ?? `exit ${exit.code}`})`);
          log(`coordinator ${coordinator.id} exited by itself (${exit.signal ?? `exit ${exit.code}`}):\n${coordinator.output().slice(-3000)}`);
        });
      }
    };
    watch();
    const clients = Array.from(
      { length: clientCount },
      (_, index) =>
        new ChaosClient({ agentId: `chaos-${index + 1}`, deploymentId: "durable-ts:1.0.0", gateways, index, apiKey: cluster.apiKey, delayMs: options.delayMs ?? 50, turnTimeoutMs: 30_000 }),
    );
    const stop = new AbortController();
    const drainMs = options.drainMs ?? 90_000;
    const conversations = clients.map((client) => client.run(stop.signal, drainMs));
    log(`${clientCount} clients conversing through ${gateways.length} gateways with 3 replicating coordinators`);

    const faults: Record<FaultKind, number> = { agent: 0, coordinator: 0, valkey: 0, s3: 0 };
    const started = Date.now();
    for (let round = 0; Date.now() - started < durationMs; round++) {
      await sleep(options.faultEveryMs ?? 4000);
      const kind = FAULTS[round % FAULTS.length] as FaultKind;
      const what = await inject(kind, cluster, lives, options);
      watch();
      if (what) {
        faults[kind]++;
        log(`+${((Date.now() - started) / 1000).toFixed(1)} s (${new Date().toISOString()}) fault: ${what}`);
      }
    }
    log("faults stopped; clients finish their last message");
    stop.abort();
    await Promise.all(conversations);

    const delivery: DeliveryFigures = { acked: 0, ran: 0, errored: 0, lost: 0, announced: 0, duplicated: 0, reordered: 0, errors: {} };
    const streams: StreamFigures = { sessions: 0, events: 0, gaps: 0, disorder: 0, phantom: 0, phantomAnnounced: 0 };
    const unreadable: string[] = [];
    const logs = await Promise.all(clients.map((client) => finalLog(client)));
    for (const [n, client] of clients.entries()) {
      const rows = logs[n];
      if (!rows) {
        unreadable.push(client.agentId);
        continue;
      }
      const d = checkDelivery(client.acked, rows);
      const s = checkStreams(client.sessions, rows);
      for (const key of ["acked", "ran", "errored", "lost", "announced", "duplicated", "reordered"] as const) delivery[key] += d[key];
      for (const [why, n] of Object.entries(d.errors)) delivery.errors[why] = (delivery.errors[why] ?? 0) + n;
      for (const key of ["sessions", "events", "gaps", "disorder", "phantom", "phantomAnnounced"] as const) streams[key] += s[key];
      if (d.lost || d.announced || d.duplicated || d.reordered || s.gaps || s.disorder || s.phantom || s.phantomAnnounced) {
        const ended = new Set(rows.filter((r) => r.message_type === "turn.done").map((r) => Number(r.turn)));
        const lost = client.acked.filter((a) => !ended.has(a.turn)).map((a) => `${a.turn}@${new Date(a.at).toISOString()}`);
        log(`${client.agentId}: ${JSON.stringify({ ...d, stream: s, lostTurns: lost.slice(0, 20), phantoms: describePhantoms(client.sessions, rows) })}`);
      }
    }
    const refusals: Record<string, number> = {};
    for (const client of clients) for (const [status, n] of client.refusals) refusals[status] = (refusals[status] ?? 0) + n;
    return {
      clients: clientCount,
      durationMs,
      faults,
      delivery,
      streams,
      unreadable,
      crashed,
      orphans: await orphans(cluster, clients[0] as ChaosClient),
      wronglyLost: wronglyDeclaredLost(
        cluster.gateways.map((g) => g.output()),
        lives,
      ),
      longestOutageMs: Math.max(...clients.map((c) => c.longestStallMs)),
      refusals,
      instancesStarted: clients.reduce((sum, c) => sum + c.instances.size, 0),
      turnsTimedOut: clients.reduce((sum, c) => sum + c.turnsTimedOut, 0),
    };
  } finally {
    if (options.logDir) {
      fs.mkdirSync(options.logDir, { recursive: true });
      for (const [n, p] of [...cluster.coordinators, ...cluster.gateways].entries()) fs.writeFileSync(path.join(options.logDir, `${p.id}-${n}.log`), p.output());
    }
    await cluster.close();
  }
}

async function inject(kind: FaultKind, cluster: TestCluster, lives: CoordinatorLife[], options: ChaosOptions): Promise<string | undefined> {
  switch (kind) {
    case "agent": {
      const processes = agentProcesses(cluster.coordinators.map((c) => c.dataDir));
      const victim = pick([...new Set(processes.map((p) => p.instanceId))]);
      if (!victim) return undefined;
      const platform = new Set(cluster.coordinators.map((c) => c.pid));
      const killed: string[] = [];
      for (const p of processes.filter((q) => q.instanceId === victim && !platform.has(q.pid))) {
        try {
          killed.push(`${p.pid} ${fs.readFileSync(`/proc/${p.pid}/comm`, "utf8").trim()}`);
          process.kill(p.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      return `kill -9 of agent ${processes.find((p) => p.instanceId === victim)?.agentId ?? "?"} (${victim}: ${killed.join(", ")})`;
    }
    case "coordinator": {
      const victim = pick(cluster.coordinators.filter((c) => c.alive)) as PodiumProcess;
      await victim.kill();
      const life = lives.find((l) => l.id === victim.id && l.killedAt === undefined);
      if (life) life.killedAt = Date.now();
      await sleep(options.coordinatorDownMs ?? 1500);
      const restarting = Date.now();
      await cluster.addCoordinator(victim.id);
      lives.push({ id: victim.id, startedAt: Date.now() });
      return `kill -9 of coordinator ${victim.id}, restarted (listening ${Date.now() - restarting} ms after its start)`;
    }
    case "valkey":
      await cluster.redis.restart();
      return "Valkey restarted (empty)";
    case "s3":
      await cluster.s3.pause();
      await sleep(options.s3OutageMs ?? 3000);
      await cluster.s3.resume();
      return `S3 away for ${options.s3OutageMs ?? 3000} ms`;
  }
}

/** The agent's whole log, read through a live instance (created again if the client's is gone); undefined if it cannot be read. */
async function finalLog(client: ChaosClient): Promise<JsonObject[] | undefined> {
  const read = until(
    async () => {
      const instanceId = await client.liveInstance().catch(() => undefined);
      if (!instanceId) return undefined;
      return readMessages((method, urlPath) => client.api(method, urlPath), instanceId).catch(() => undefined);
    },
    `the log of ${client.agentId}`,
    60_000,
    500,
  );
  return read.then(({ value }) => value).catch(() => undefined);
}

/** Agent processes whose instance the platform does not list, once the kills' aftermath settled (≤ 20 s). */
async function orphans(cluster: TestCluster, client: ChaosClient): Promise<number> {
  const dataDirs = [...new Set(cluster.coordinators.map((c) => c.dataDir))];
  let count = 0;
  for (const deadline = Date.now() + 20_000; ; await sleep(500)) {
    const listed = await client.api("GET", "/api/v1/instances");
    if (listed.status === 200) {
      const live = new Set((listed.json.instances as JsonObject[]).map((i) => String(i.instance_id)));
      count = new Set(
        agentProcesses(dataDirs)
          .filter((p) => !live.has(p.instanceId))
          .map((p) => p.instanceId),
      ).size;
    } else count = -1;
    if (count === 0 || Date.now() > deadline) return count;
  }
}
