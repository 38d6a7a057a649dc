/**
 * Heartbeats survive a busy main thread (a burst of synchronous agent spawns): the registration's worker
 * thread keeps the heartbeat key alive while the event loop is blocked for longer than the key's TTL, and
 * stops doing so once the main thread has been stuck past the stall limit (a hung coordinator still leaves
 * discovery). Scheduled heartbeats keep a fixed rate and report how late they started. Real redis-server.
 */
import { describe, it, expect, beforeAll, afterAll } from "@jest/globals";
import { Redis } from "ioredis";
import { CoordinatorRegistration } from "../../services/cluster/coordinator-registration.js";
import { startRedis, type RedisServer } from "../helpers/redis-server.js";

let redis: RedisServer;
let client: Redis;

beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
});

afterAll(async () => {
  client.disconnect();
  await redis?.stop();
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Blocks the event loop, as a burst of synchronous spawns does. */
function blockFor(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    // busy
  }
}

function register(coordinatorId: string, keepAliveStallLimitMs: number): CoordinatorRegistration {
  return new CoordinatorRegistration({
    redis: redis.url,
    coordinatorId,
    address: `http://${coordinatorId}.test:7100`,
    info: () => ({ instances: 0, capacity: 10, cpuLoad: 0, memoryBytes: 0, draining: false }),
    heartbeatMs: 200,
    ttlMs: 600,
    keepAliveStallLimitMs,
  });
}

describe("heartbeats and a blocked event loop", () => {
  it("the key outlives a block longer than its TTL, and the late heartbeat is reported", async () => {
    const registration = register("coord-blocked", 5000);
    await registration.start();
    try {
      await sleep(500); // the worker is up
      blockFor(1500); // 2.5 TTLs without a main-thread heartbeat
      // Asked before the overdue heartbeat can run: only the worker can have kept the key.
      expect(await client.pttl("podium:coordinator:coord-blocked")).toBeGreaterThan(0);
      expect(registration.keepAlives).toBeGreaterThan(0);
      await sleep(300);
      expect(registration.heartbeatLag.maxMs).toBeGreaterThanOrEqual(1000);
    } finally {
      await registration.stop();
    }
    expect(await client.exists("podium:coordinator:coord-blocked")).toBe(0); // deregistered: nothing extends it any more
  });

  it("a main thread stuck past the stall limit is not kept alive: its key expires", async () => {
    const registration = register("coord-hung", 600);
    await registration.start();
    try {
      await sleep(500);
      blockFor(2500); // stall limit 600 ms + TTL 600 ms, well passed
      expect(await client.pttl("podium:coordinator:coord-hung")).toBe(-2);
    } finally {
      await registration.stop();
    }
  });

  it("without a keeper (stall limit 0) the same block lets the key expire", async () => {
    const registration = register("coord-unkept", 0);
    await registration.start();
    try {
      await sleep(500);
      blockFor(1500);
      expect(await client.pttl("podium:coordinator:coord-unkept")).toBe(-2);
      expect(registration.keepAlives).toBe(0);
    } finally {
      await registration.stop();
    }
  });

  it("heartbeats keep a fixed rate while the loop is free", async () => {
    const registration = register("coord-steady", 5000);
    await registration.start();
    try {
      const seen: number[] = [];
      for (let i = 0; i < 12; i++) {
        const text = await client.get("podium:coordinator:coord-steady");
        const at = Number((JSON.parse(text ?? "{}") as { heartbeatAt?: number }).heartbeatAt);
        if (seen[seen.length - 1] !== at) seen.push(at);
        await sleep(100);
      }
      expect(seen.length).toBeGreaterThanOrEqual(4);
      expect(registration.heartbeatLag.beats).toBeGreaterThanOrEqual(3);
    } finally {
      await registration.stop();
    }
  });
});
