/**
 * Bursts of concurrent creates over two coordinators (OS processes, with a gateway, redis-server and
 * s3rver): how many are held without a coordinator being declared lost. For each burst size: creates
 * answered 201, 429 with Retry-After (a coordinator's start queue is full), 503 with Retry-After (the
 * gateway finds every coordinator at capacity: 64 instances each on a 2-core host), anything else; agents running that the platform does not list
 * (orphans); coordinators the gateway declared lost; and the heartbeat lag, measured from Valkey: the
 * longest gap between two heartbeats the coordinators' main threads wrote, minus the 1 s period, and the
 * lowest TTL left on a heartbeat key (a worker thread keeps it alive while the main thread is busy; the
 * coordinator is declared lost at 0). Goal: 200 concurrent, every create 201 or 429 + Retry-After, 0 orphans,
 * 0 lost.
 */
import path from "node:path";
import { Redis } from "ioredis";
import { packBundle } from "../services/registry/bundle-archive.js";
import { REPO_ROOT } from "../services/coordinator/runtime-commands.js";
import type { JsonObject } from "../services/shared/json.js";
import { CLUSTER_API_KEY, startCluster, type PodiumProcess, type TestCluster } from "../test/helpers/cluster-processes.js";
import { runningInstanceIds } from "../test/helpers/agent-processes.js";
import type { BenchResults } from "./bench-util.js";

export interface CreateBurstBenchOptions {
  bursts?: number[];
  /** More environment for the podium processes. */
  env?: Record<string, string>;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Watches the coordinators' heartbeat keys every 50 ms. */
function watchHeartbeats(cluster: TestCluster, ids: string[]): { stop(): Promise<{ maxGapMs: number; minTtlMs: number; absent: number }> } {
  const redis = new Redis(cluster.redis.url);
  const last = new Map<string, number>();
  let maxGapMs = 0;
  let minTtlMs = Infinity;
  let absent = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      for (const id of ids) {
        const key = `podium:coordinator:${id}`;
        const [[, text], [, ttl]] = ((await redis.multi().get(key).pttl(key).exec()) ?? []) as [[unknown, string | null], [unknown, number]];
        if (typeof ttl === "number") {
          if (ttl < 0) absent++;
          else minTtlMs = Math.min(minTtlMs, ttl);
        }
        const at = text ? Number((JSON.parse(text) as { heartbeatAt?: number }).heartbeatAt) : NaN;
        const previous = last.get(id);
        if (Number.isFinite(at) && previous !== undefined && at !== previous) maxGapMs = Math.max(maxGapMs, at - previous);
        if (Number.isFinite(at)) last.set(id, at);
      }
      await sleep(50);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      redis.disconnect();
      return { maxGapMs, minTtlMs, absent };
    },
  };
}

async function create(gateway: string): Promise<string> {
  try {
    const res = await fetch(`${gateway}/api/v1/instances`, {
      method: "POST",
      headers: { authorization: `Bearer ${CLUSTER_API_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ deployment_id: "echo-ts:1.0.0" }),
    });
    const text = await res.text();
    if (res.status === 201) return "201";
    const retryAfter = /^\d+$/.test(res.headers.get("retry-after") ?? "");
    if ((res.status === 429 || res.status === 503) && retryAfter) return `${res.status}+RA`;
    return `${res.status} ${text.slice(0, 160)}`;
  } catch (error) {
    return `failed: ${String(error)}`;
  }
}

async function listed(cluster: TestCluster, gateway: string): Promise<Set<string>> {
  const res = await cluster.api(gateway, "GET", "/api/v1/instances");
  return new Set(((res.json.instances as JsonObject[] | undefined) ?? []).map((i) => String(i.instance_id)));
}

/** Agents running that the platform does not list, once creates and their clean-ups settled (up to 20 s). */
async function orphans(cluster: TestCluster, gateway: string, dataDirs: string[]): Promise<number> {
  let count = 0;
  for (let waited = 0; waited <= 20_000; waited += 500) {
    const platform = await listed(cluster, gateway);
    count = [...runningInstanceIds(dataDirs)].filter((id) => !platform.has(id)).length;
    if (count === 0) return 0;
    await sleep(500);
  }
  return count;
}

export async function runCreateBurstBench(options: CreateBurstBenchOptions = {}): Promise<BenchResults> {
  const cluster = await startCluster({ coordinators: 2, gateways: 1, ...(options.env ? { env: options.env } : {}) });
  const results: BenchResults = {};
  try {
    const gateway = (cluster.gateways[0] as PodiumProcess).url;
    const dataDirs = cluster.coordinators.map((c) => c.dataDir);
    const deployed = await cluster.api(gateway, "POST", "/api/v1/deployments", await packBundle(path.join(REPO_ROOT, "examples/echo-ts")));
    if (deployed.status !== 201) throw new Error(`deploy failed: ${deployed.status}`);
    const lost = (): number =>
      (cluster.gateways[0] as PodiumProcess)
        .output()
        .split("\n")
        .filter((line) => line.includes('"coordinator lost"')).length;
    for (const n of options.bursts ?? [50, 100, 200]) {
      const lostBefore = lost();
      const heartbeats = watchHeartbeats(
        cluster,
        cluster.coordinators.map((c) => c.id),
      );
      const started = Date.now();
      const answers = await Promise.all(Array.from({ length: n }, () => create(gateway)));
      const ms = Date.now() - started;
      const beats = await heartbeats.stop();
      const count = (what: string): number => answers.filter((a) => a === what).length;
      const others = answers.filter((a) => a !== "201" && a !== "429+RA" && a !== "503+RA");
      if (others.length > 0) process.stderr.write(`burst ${n}: unexpected answers ${JSON.stringify([...new Set(others)])}\n`);
      results[`${n} concurrent: created (201)`] = count("201");
      results[`${n} concurrent: refused 429 + Retry-After (a coordinator busy starting)`] = count("429+RA");
      results[`${n} concurrent: refused 503 + Retry-After (every coordinator full)`] = count("503+RA");
      results[`${n} concurrent: other answers`] = others.length;
      results[`${n} concurrent: orphan agents`] = await orphans(cluster, gateway, dataDirs);
      results[`${n} concurrent: coordinators declared lost`] = lost() - lostBefore;
      results[`${n} concurrent: heartbeat max lag ms (main thread)`] = Math.max(0, beats.maxGapMs - 1000);
      results[`${n} concurrent: heartbeat key min TTL left ms (of 3000)`] = Number.isFinite(beats.minTtlMs) ? beats.minTtlMs : 0;
      results[`${n} concurrent: burst answered in ms`] = ms;
      // Stop everything before the next burst.
      const platform = await listed(cluster, gateway);
      await Promise.all([...platform].map((id) => cluster.api(gateway, "DELETE", `/api/v1/instances/${id}?grace_ms=0`)));
      for (let waited = 0; runningInstanceIds(dataDirs).size > 0 && waited < 30_000; waited += 250) await sleep(250);
    }
  } finally {
    // A clean stop unmounts the agents' disks (a SIGKILL would leave them mounted).
    await Promise.all(cluster.coordinators.map((c) => c.stop("SIGTERM", 30_000)));
    await cluster.close();
  }
  return results;
}
