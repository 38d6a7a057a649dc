/** The single-writer lease in a real redis-server: exclusion, takeover, fencing of a paused owner. */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import type { Redis } from "ioredis";
import { describe, it, expect, beforeAll, afterAll, afterEach } from "@jest/globals";
import { Code, ConnectError } from "@connectrpc/connect";
import { AgentLease, leaseKey } from "../../services/replication/agent-lease.js";
import { closeValkey, createValkeyClient } from "../../services/cluster/valkey-client.js";
import { silentLogger } from "../../services/shared/logger.js";
import { startRedis, type RedisServer } from "../helpers/redis-server.js";
import { sleep, waitFor } from "./replication-fixture.js";

const HOLDER = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures", "lease-holder.ts");

async function rejection(promise: Promise<unknown>): Promise<ConnectError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConnectError);
  return err as ConnectError;
}

describe("AgentLease", () => {
  let server: RedisServer;
  let redis: Redis;
  const leases: AgentLease[] = [];
  const lost: { agentId: string; reason: string; at: number }[] = [];
  const options = (agentId: string, owner: string, ttlMs = 600) => ({
    redis,
    agentId,
    owner,
    ttlMs,
    logger: silentLogger,
    onLost: (id: string, reason: string) => lost.push({ agentId: id, reason, at: performance.now() }),
  });
  const acquire = async (agentId: string, owner: string, ttlMs?: number, waitMs?: number) => {
    const lease = await AgentLease.acquire(options(agentId, owner, ttlMs), waitMs === undefined ? {} : { waitMs });
    leases.push(lease);
    return lease;
  };

  beforeAll(async () => {
    server = await startRedis();
    redis = createValkeyClient(server.url);
  });
  afterEach(async () => {
    await Promise.all(leases.splice(0).map((l) => l.release()));
    lost.length = 0;
  });
  afterAll(async () => {
    await closeValkey(redis);
    await server.stop();
  });

  it("excludes a second owner while held, and hands over on release", async () => {
    const first = await acquire("a1", "coord-1");
    expect(first.holds()).toBe(true);
    expect(await redis.get(leaseKey("a1"))).toBe(first.token);
    const started = performance.now();
    const err = await rejection(acquire("a1", "coord-2", 600, 5000));
    expect(err.code).toBe(Code.AlreadyExists);
    expect(err.rawMessage).toMatch(/is held by coordinator coord-1: live there, or still uploading/);
    // A renewing holder is recognised as alive well before the wait ends.
    expect(performance.now() - started).toBeLessThan(2000);
    await sleep(700); // renewals keep it past its ttl
    expect(first.holds()).toBe(true);
    await first.release();
    expect(first.holds()).toBe(false);
    const second = await acquire("a1", "coord-2", 600, 0);
    expect(second.holds()).toBe(true);
    expect(lost).toEqual([]);
  });

  it("takes over a dead holder's lease once it expires", async () => {
    await redis.set(leaseKey("a2"), "coord-dead:token", "PX", 500);
    const started = performance.now();
    const lease = await acquire("a2", "coord-2", 600, 2000);
    expect(lease.holds()).toBe(true);
    expect(performance.now() - started).toBeGreaterThan(300);
  });

  it("reports the loss promptly when another owner took the key", async () => {
    const lease = await acquire("a3", "coord-1", 900);
    await redis.set(leaseKey("a3"), "coord-2:other", "PX", 5000);
    await waitFor(() => lost.length === 1, 2000, "onLost");
    expect(lost[0]).toMatchObject({ agentId: "a3", reason: "taken over by coordinator coord-2" });
    expect(lease.holds()).toBe(false);
    await lease.release(); // compare-and-delete leaves the new owner's key alone
    expect(await redis.get(leaseKey("a3"))).toBe("coord-2:other");
  });

  it("survives Valkey restarting empty, and is lost when Valkey stays away past the ttl", async () => {
    const lease = await acquire("a4", "coord-1", 900);
    await server.restart();
    await waitFor(() => lease.holds() && redis.status === "ready", 3000, "reconnect");
    await sleep(800);
    expect(await redis.get(leaseKey("a4"))).toBe(lease.token);
    expect(lost).toEqual([]);

    await server.pause();
    const pausedAt = performance.now();
    await waitFor(() => lost.length === 1, 3000, "onLost while Valkey is down");
    expect(lost[0]?.reason).toMatch(/not renewed within 900 ms/);
    expect((lost[0]?.at ?? 0) - pausedAt).toBeLessThan(1200);
    expect(lease.holds()).toBe(false);
    await server.restart();
    await waitFor(() => redis.status === "ready", 5000, "reconnect");
  });
  it("Valkey restarted empty: no one takes a live holder's lease before the holder re-created it", async () => {
    const recreated: string[] = [];
    const holder = await AgentLease.acquire({ ...options("a5", "coord-1", 1500), onRecreated: (id) => recreated.push(id) });
    leases.push(holder);
    await server.restart();
    await waitFor(() => redis.status === "ready", 5000, "reconnect");
    // At once: the key is gone and the holder has not renewed yet. The contender waits out the ttl, then finds it held.
    const startedAt = performance.now();
    const refused = await rejection(AgentLease.acquire(options("a5", "coord-2", 1500), { waitMs: 300 }));
    expect(refused.code).toBe(Code.AlreadyExists);
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(1000);
    expect(lost).toEqual([]);
    expect(holder.holds()).toBe(true);
    expect(await redis.get(leaseKey("a5"))).toBe(holder.token);
    expect(recreated).toEqual(["a5"]);
  }, 20_000);

  it("Valkey restarted while an acquire waits for a silent holder's lease: it still waits out the ttl", async () => {
    await redis.set(leaseKey("a6"), "coord-dead:token", "PX", 3000); // a holder that renews no more
    const acquiring = AgentLease.acquire(options("a6", "coord-2", 1500), { waitMs: 20_000 });
    await sleep(300);
    await server.restart(); // the silent holder's key is gone at once
    const restartedAt = performance.now();
    const lease = await acquiring;
    leases.push(lease);
    expect(performance.now() - restartedAt).toBeGreaterThanOrEqual(1400); // not before a live holder could have re-created it
    expect(await redis.get(leaseKey("a6"))).toBe(lease.token);
  }, 20_000);
});

describe("fencing a paused owner (SIGSTOP)", () => {
  let server: RedisServer;
  let redis: Redis;
  let child: ChildProcess | undefined;
  let dir: string;
  beforeAll(async () => {
    server = await startRedis();
    redis = createValkeyClient(server.url);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-"));
  });
  afterAll(async () => {
    if (child && child.exitCode === null) {
      child.kill("SIGCONT");
      child.kill("SIGKILL");
      await new Promise((resolve) => child?.once("exit", resolve));
    }
    await closeValkey(redis);
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("the old owner writes nothing after another coordinator took over", async () => {
    const dbPath = path.join(dir, "writes.db");
    const ttlMs = 1000;
    child = spawn(process.execPath, ["--import", "tsx", HOLDER, server.url, "agent-f", "coord-old", String(ttlMs), dbPath], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout?.on("data", (chunk: Buffer) => (out += chunk.toString()));
    await waitFor(() => out.includes("ACQUIRED"), 15_000, "the holder to start");
    await sleep(300);

    child.kill("SIGSTOP");
    const lease = await AgentLease.acquire({ redis, agentId: "agent-f", owner: "coord-new", ttlMs, logger: silentLogger, onLost: () => undefined }, { waitMs: ttlMs + 2000 });
    const takeoverAt = Date.now();
    await sleep(300);
    const resumedAt = performance.now();
    child.kill("SIGCONT");
    await waitFor(() => out.includes("LOST"), 3000, "the old owner to notice");
    const noticedMs = performance.now() - resumedAt;
    await sleep(300); // it keeps running, so a write would land now

    const db = new Database(dbPath, { readonly: true });
    const { n, last } = db.prepare("SELECT count(*) AS n, max(at) AS last FROM writes WHERE writer = 'coord-old'").get() as { n: number; last: number };
    db.close();
    expect(n).toBeGreaterThan(5);
    expect(last).toBeLessThan(takeoverAt);
    expect(out).toMatch(/LOST not renewed within 1000 ms/);
    expect(noticedMs).toBeLessThan(1000);
    await lease.release();
  }, 30_000);
});
