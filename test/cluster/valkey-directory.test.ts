/**
 * Service discovery against a real redis-server: coordinators register with heartbeats, a gateway's
 * ValkeyCoordinatorDirectory sees them, places only on usable ones and routes instances through the
 * mappings kept in Valkey.
 */
import { describe, it, expect, beforeAll, afterAll, afterEach } from "@jest/globals";
import { Code, ConnectError } from "@connectrpc/connect";
import { Redis } from "ioredis";
import { startRedis, type RedisServer } from "../helpers/redis-server.js";
import { CoordinatorRegistration } from "../../services/cluster/coordinator-registration.js";
import { ValkeyCoordinatorDirectory } from "../../services/cluster/valkey-directory.js";
import { ClusterKeys } from "../../services/cluster/cluster-keys.js";
import { fakeCoordinator, routerConnector, waitFor, sleep, type FakeCoordinator } from "./cluster-test-utils.js";

let redis: RedisServer;
let admin: Redis;
const cleanups: (() => Promise<void>)[] = [];
let prefixCounter = 0;

beforeAll(async () => {
  redis = await startRedis();
  admin = new Redis(redis.url);
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

afterAll(async () => {
  admin.disconnect();
  await redis.stop();
});

/** A fresh key prefix per test, so tests do not see each other's coordinators. */
function cluster(options: { refreshMs?: number } = {}) {
  const keyPrefix = `t${++prefixCounter}:`;
  const fakes = new Map<string, FakeCoordinator>();
  const connector = routerConnector(fakes);
  const directory = new ValkeyCoordinatorDirectory({ redis: redis.url, connect: connector.connect, keyPrefix, refreshMs: options.refreshMs ?? 1000 });
  cleanups.push(() => directory.close());
  const lost: { id: string; reason: string; at: number }[] = [];
  directory.onCoordinatorLost((id, reason) => lost.push({ id, reason, at: Date.now() }));
  const register = async (id: string, opts: { capacity?: number; instances?: number; draining?: boolean } = {}) => {
    const fake = fakeCoordinator(id, opts.capacity ?? 1000);
    fake.instances = opts.instances ?? 0;
    fake.draining = opts.draining ?? false;
    fakes.set(id, fake);
    const registration = new CoordinatorRegistration({ redis: redis.url, coordinatorId: id, address: `http://${id}.test:7100`, info: () => fake.load(), keyPrefix });
    cleanups.push(() => registration.stop());
    await registration.start();
    return { fake, registration };
  };
  const ids = () =>
    directory
      .members()
      .map((m) => m.coordinatorId)
      .sort();
  return { keyPrefix, keys: new ClusterKeys(keyPrefix), directory, connector, register, lost, ids };
}

async function placeMany(directory: ValkeyCoordinatorDirectory, n: number): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const c = await directory.place();
    counts.set(c.id, (counts.get(c.id) ?? 0) + 1);
  }
  return counts;
}

async function expectCode(promise: Promise<unknown>, code: Code, message?: RegExp): Promise<ConnectError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConnectError);
  const connectError = error as ConnectError;
  expect(Code[connectError.code]).toBe(Code[code]);
  if (message) expect(connectError.rawMessage).toMatch(message);
  return connectError;
}

describe("ValkeyCoordinatorDirectory + CoordinatorRegistration", () => {
  it("sees every registered coordinator with its address and load", async () => {
    const c = cluster();
    await c.register("coord-a", { capacity: 10, instances: 3 });
    await c.register("coord-b", { capacity: 20 });
    await waitFor(() => c.ids().length === 2, "both coordinators");
    expect(c.ids()).toEqual(["coord-a", "coord-b"]);
    const a = c.directory.members().find((m) => m.coordinatorId === "coord-a");
    expect(a).toMatchObject({ address: "http://coord-a.test:7100", instances: 3, capacity: 10, draining: false, ttlMs: 3000 });
    // The key layout documented in docs/cluster.md.
    expect(await admin.smembers(c.keys.coordinators)).toEqual(expect.arrayContaining(["coord-a", "coord-b"]));
    const ttl = await admin.pttl(c.keys.coordinator("coord-a"));
    expect(ttl).toBeGreaterThan(1000);
    expect(ttl).toBeLessThanOrEqual(3000);
    expect((await c.directory.all()).map((x) => x.id).sort()).toEqual(["coord-a", "coord-b"]);
  });

  it("a clean stop removes the coordinator at once through pub/sub (no refresh needed)", async () => {
    const c = cluster({ refreshMs: 60_000 });
    const a = await c.register("coord-a");
    await c.register("coord-b");
    await waitFor(() => c.ids().length === 2, "both coordinators");
    const stoppedAt = Date.now();
    await a.registration.stop();
    const elapsed = await waitFor(() => c.ids().length === 1, "coord-a to leave", 5000, 2);
    console.log(`clean leave seen by the directory ${Date.now() - stoppedAt} ms after stop() (poll ${elapsed} ms)`);
    expect(c.ids()).toEqual(["coord-b"]);
    expect(c.lost).toEqual([expect.objectContaining({ id: "coord-a", reason: "left" })]);
    expect(await admin.exists(c.keys.coordinator("coord-a"))).toBe(0);
    expect(await admin.sismember(c.keys.coordinators, "coord-a")).toBe(0);
  });

  it("never places on a draining coordinator, and sees draining start at once", async () => {
    const c = cluster({ refreshMs: 60_000 });
    const a = await c.register("coord-a");
    await c.register("coord-b", { draining: true });
    await c.register("coord-c");
    await waitFor(() => c.ids().length === 3, "three coordinators");
    let counts = await placeMany(c.directory, 200);
    expect(counts.get("coord-b")).toBeUndefined();
    expect(counts.get("coord-a")).toBeGreaterThan(0);
    expect(counts.get("coord-c")).toBeGreaterThan(0);

    a.fake.draining = true;
    await a.registration.heartbeatNow(); // what the coordinator does when DrainCoordinator starts
    await waitFor(() => c.directory.members().find((m) => m.coordinatorId === "coord-a")?.draining === true, "draining to propagate", 2000, 2);
    counts = await placeMany(c.directory, 100);
    expect([...counts.keys()]).toEqual(["coord-c"]);
  });

  it("never places on a full coordinator; nothing usable -> Unavailable naming why", async () => {
    const c = cluster();
    const a = await c.register("coord-a", { capacity: 5, instances: 5 });
    await c.register("coord-b", { capacity: 5, instances: 0 });
    await waitFor(() => c.ids().length === 2, "two coordinators");
    // coord-b has room for exactly 5; placements count until the next heartbeat reports them.
    const counts = await placeMany(c.directory, 5);
    expect(counts).toEqual(new Map([["coord-b", 5]]));
    await expectCode(c.directory.place(), Code.Unavailable, /2 registered, 0 draining, 2 at capacity/);
    a.fake.instances = 4;
    await a.registration.heartbeatNow();
    await waitFor(
      async () =>
        (await c.directory.place().then(
          (x) => x.id,
          () => "",
        )) === "coord-a",
      "coord-a to have room again",
      3000,
      50,
    );
  });

  it("routes instances and agents through the mappings in Valkey; unknown ids -> NotFound", async () => {
    const c = cluster();
    const a = await c.register("coord-a");
    await c.register("coord-b");
    await waitFor(() => c.ids().length === 2, "two coordinators");
    await a.registration.recordInstance("inst-1", "agent-1");
    expect((await c.directory.locateInstance("inst-1")).id).toBe("coord-a");
    expect((await c.directory.locateAgent("agent-1")).id).toBe("coord-a");
    // The gateway writes the same mapping after CreateInstance; idempotent.
    await c.directory.recordInstance({ instanceId: "inst-1", agentId: "agent-1", coordinatorId: "coord-a" });
    await c.directory.recordInstance({ instanceId: "inst-2", agentId: "agent-2", coordinatorId: "coord-b" });
    expect((await c.directory.locateInstance("inst-2")).id).toBe("coord-b");
    await expectCode(c.directory.locateInstance("inst-nope"), Code.NotFound, /unknown instance inst-nope/);
    await expectCode(c.directory.locateAgent("agent-nope"), Code.NotFound, /unknown agent agent-nope/);

    // An ended instance stays visible for its retention, then is unknown to a gateway that never located
    // it; one that did keeps asking its coordinator (an instance never moves), which answers for it.
    await a.registration.recordInstance("inst-3", "agent-3");
    await a.registration.forgetInstance("inst-1", 300);
    await a.registration.forgetInstance("inst-3", 300);
    expect((await c.directory.locateInstance("inst-1")).id).toBe("coord-a");
    await sleep(400);
    expect((await c.directory.locateInstance("inst-1")).id).toBe("coord-a");
    await expectCode(c.directory.locateInstance("inst-3"), Code.NotFound, /unknown instance inst-3/);
    expect((await c.directory.locateAgent("agent-1")).id).toBe("coord-a");

    // Clients are created once per coordinator and reused.
    expect(c.connector.connects.filter((id) => id === "coord-a")).toHaveLength(1);
  });

  it("an instance whose coordinator left -> NotFound; its agent -> Unavailable (never restarted afresh elsewhere)", async () => {
    const c = cluster();
    const a = await c.register("coord-a");
    await waitFor(() => c.ids().length === 1, "coord-a");
    await a.registration.recordInstance("inst-9", "agent-9");
    await c.directory.locateInstance("inst-9");
    await a.registration.stop();
    await waitFor(() => c.ids().length === 0, "coord-a to leave");
    await expectCode(c.directory.locateInstance("inst-9"), Code.NotFound, /coordinator coord-a, which is gone/);
    await expectCode(c.directory.locateAgent("agent-9"), Code.Unavailable, /coord-a, which is gone/);
    expect(c.connector.closes).toContain("coord-a");
    await expectCode(c.directory.place(), Code.Unavailable, /no coordinator is registered/);
  });

  it("a located instance that its coordinator, restarted under a new id, restored is found there (the kept location is read again)", async () => {
    const c = cluster({ refreshMs: 200 });
    const old = await c.register("coord-old");
    await waitFor(() => c.ids().length === 1, "coord-old");
    await old.registration.recordInstance("inst-r", "agent-r");
    expect((await c.directory.locateInstance("inst-r")).id).toBe("coord-old");
    // Same data directory, new (default: random) id: the restored instance is registered again, under the new id.
    await old.registration.stop();
    const restarted = await c.register("coord-new");
    await restarted.registration.recordInstance("inst-r", "agent-r");
    await waitFor(() => c.ids().join() === "coord-new", "coord-old to leave and coord-new to join");
    expect((await c.directory.locateInstance("inst-r")).id).toBe("coord-new");
  });

  it("follows liveInstances(): new instances are recorded, vanished ones forgotten", async () => {
    const c = cluster();
    const live = new Map<string, string>([["inst-l1", "agent-l1"]]);
    const registration = new CoordinatorRegistration({
      redis: redis.url,
      coordinatorId: "coord-l",
      address: "http://coord-l.test:7100",
      keyPrefix: c.keyPrefix,
      info: () => ({ instances: live.size, capacity: 10, cpuLoad: 0, memoryBytes: 0, draining: false }),
      liveInstances: () => [...live].map(([instanceId, agentId]) => ({ instanceId, agentId })),
      endedRetentionMs: 60_000,
    });
    cleanups.push(() => registration.stop());
    await registration.start();
    expect(await admin.get(c.keys.instance("inst-l1"))).toBe(JSON.stringify({ coordinatorId: "coord-l", agentId: "agent-l1" }));
    live.delete("inst-l1");
    live.set("inst-l2", "agent-l2");
    await registration.heartbeatNow();
    expect(await admin.smembers(c.keys.coordinatorInstances("coord-l"))).toEqual(["inst-l2"]);
    const ttl = await admin.pttl(c.keys.instance("inst-l1"));
    expect(ttl).toBeGreaterThan(50_000);
    expect(await admin.pttl(c.keys.instance("inst-l2"))).toBe(-1); // live: no TTL
  });

  it("rejects bad options and ids", () => {
    const base = { redis: redis.url, address: "http://x:1", info: () => ({ instances: 0, capacity: 1, cpuLoad: 0, memoryBytes: 0, draining: false }) };
    expect(() => new CoordinatorRegistration({ ...base, coordinatorId: "has:colon" })).toThrow(RangeError);
    expect(() => new CoordinatorRegistration({ ...base, coordinatorId: "ok", heartbeatMs: 1000, ttlMs: 1000 })).toThrow(/ttlMs/);
  });
});
