/**
 * Where an agent's next instance starts (ValkeyCoordinatorDirectory.placeAgent) against a real
 * redis-server: a new agent is placed normally, an agent with a live home coordinator goes home, a
 * replicated agent whose home is gone resumes on a replicated coordinator only, and a non-replicated
 * one is refused (UNAVAILABLE) rather than started afresh. Also `place(…, { replicated: true })` and
 * the `replicated` flag of heartbeats.
 */
import { describe, it, expect, beforeAll, afterAll, afterEach } from "@jest/globals";
import { Code, createRouterTransport } from "@connectrpc/connect";
import { Redis } from "ioredis";
import { startRedis, type RedisServer } from "../helpers/redis-server.js";
import { CoordinatorRegistration } from "../../services/cluster/coordinator-registration.js";
import { ValkeyCoordinatorDirectory, type ClosableCoordinatorClients, type CoordinatorAddress } from "../../services/cluster/valkey-directory.js";
import { ClusterKeys, heartbeatFromJson, parseHeartbeat, parseMembershipEvent, type CoordinatorHeartbeat } from "../../services/cluster/cluster-keys.js";
import { coordinatorClients } from "../../services/gateway/coordinator-directory.js";
import { waitFor } from "./cluster-test-utils.js";
import { connectErrorOf as rejectionOf } from "../helpers/connect-error-of.js";

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
  await admin.quit();
  await redis.stop();
});

interface CoordinatorSpec {
  instances?: number;
  capacity?: number;
  draining?: boolean;
  replicated?: boolean;
}

/** A fresh key prefix per test; placement only needs each client's `id`, so the transports serve nothing. */
function cluster() {
  const keyPrefix = `ap${++prefixCounter}:`;
  const keys = new ClusterKeys(keyPrefix);
  const connects: string[] = [];
  const connect = (info: CoordinatorAddress): ClosableCoordinatorClients => {
    connects.push(info.coordinatorId);
    return coordinatorClients(
      info.coordinatorId,
      createRouterTransport(() => undefined),
    );
  };
  let directory: ValkeyCoordinatorDirectory | undefined;
  /** The gateway's directory (created on first use, after the coordinators registered so far). */
  const gateway = async (): Promise<ValkeyCoordinatorDirectory> => {
    if (directory) return directory;
    const created = new ValkeyCoordinatorDirectory({ redis: redis.url, connect, keyPrefix, refreshMs: 60_000 });
    directory = created;
    cleanups.push(() => created.close());
    await created.ready();
    return created;
  };
  const register = async (id: string, spec: CoordinatorSpec = {}): Promise<CoordinatorRegistration> => {
    const registration = new CoordinatorRegistration({
      redis: redis.url,
      coordinatorId: id,
      address: `http://${id}.test:7100`,
      keyPrefix,
      info: () => ({
        instances: spec.instances ?? 0,
        capacity: spec.capacity ?? 100,
        cpuLoad: 0,
        memoryBytes: 1024,
        draining: spec.draining ?? false,
        ...(spec.replicated ? { replicated: true } : {}),
      }),
    });
    cleanups.push(() => registration.stop());
    await registration.start();
    return registration;
  };
  /** The agent's home (where it last ran) and, for a replicated agent, its last writer. */
  const agentRan = async (agentId: string, home: string, options: { replicatedBy?: string } = {}): Promise<void> => {
    await admin.set(keys.agent(agentId), home);
    if (options.replicatedBy) await admin.set(keys.agentWriter(agentId), options.replicatedBy);
  };
  const ids = (d: ValkeyCoordinatorDirectory): string[] =>
    d
      .members()
      .map((m) => m.coordinatorId)
      .sort();
  return { keyPrefix, keys, connects, gateway, register, agentRan, ids };
}

async function placeAgentMany(directory: ValkeyCoordinatorDirectory, agentId: string, n: number): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const c = await directory.placeAgent(agentId);
    counts.set(c.id, (counts.get(c.id) ?? 0) + 1);
  }
  return counts;
}

describe("ValkeyCoordinatorDirectory.placeAgent", () => {
  it("places an unknown agent like a new instance (any usable coordinator, replicated or not)", async () => {
    const c = cluster();
    await c.register("coord-busy", { instances: 90, capacity: 100, replicated: true });
    await c.register("coord-idle", { instances: 0, capacity: 100 });
    await c.register("coord-draining", { draining: true, replicated: true });
    const d = await c.gateway();
    expect(c.ids(d)).toEqual(["coord-busy", "coord-draining", "coord-idle"]);
    // Power of two choices over the two usable ones always takes the much less loaded one here.
    const first = await d.placeAgent("agent-new");
    expect(first.id).toBe("coord-idle");
    // Nothing is recorded by placement itself (the gateway records after the create succeeds).
    expect(await admin.exists(c.keys.agent("agent-new"))).toBe(0);
    const counts = await placeAgentMany(d, "agent-new", 20);
    expect(counts.has("coord-draining")).toBe(false);
  });

  it("an unknown agent with no coordinator registered -> Unavailable", async () => {
    const c = cluster();
    const d = await c.gateway();
    const error = await rejectionOf(d.placeAgent("agent-new"));
    expect(error.code).toBe(Code.Unavailable);
    expect(error.rawMessage).toMatch(/no coordinator is registered/);
  });

  it("sends an agent to its live home coordinator, even when it is the most loaded", async () => {
    const c = cluster();
    await c.register("coord-home", { instances: 95, capacity: 100 });
    await c.register("coord-idle", { instances: 0, capacity: 100, replicated: true });
    await c.agentRan("agent-h", "coord-home");
    const d = await c.gateway();
    expect(await placeAgentMany(d, "agent-h", 20)).toEqual(new Map([["coord-home", 20]]));
    // A new agent in the same cluster goes to the idle one: the home is chosen for where the data is.
    expect((await d.placeAgent("agent-other")).id).toBe("coord-idle");
  });

  it("a live home wins over replication: a replicated agent still goes home while its home is alive", async () => {
    const c = cluster();
    await c.register("coord-home", { instances: 50, replicated: true });
    await c.register("coord-r2", { instances: 0, replicated: true });
    await c.agentRan("agent-h", "coord-home", { replicatedBy: "coord-home" });
    const d = await c.gateway();
    expect(await placeAgentMany(d, "agent-h", 10)).toEqual(new Map([["coord-home", 10]]));
  });

  it("finds a live home this gateway has not seen yet (reads its heartbeat key directly)", async () => {
    const c = cluster();
    await c.register("coord-known", { instances: 0 });
    const d = await c.gateway();
    expect(c.ids(d)).toEqual(["coord-known"]);
    // A heartbeat key that is not (yet) in the coordinators set nor announced on the channel.
    const now = Date.now();
    const heartbeat: CoordinatorHeartbeat = {
      coordinatorId: "coord-fresh",
      address: "http://coord-fresh.test:7100",
      instances: 99,
      capacity: 100,
      cpuLoad: 0,
      memoryBytes: 0,
      draining: false,
      startedAt: now,
      version: "test",
      heartbeatAt: now,
      ttlMs: 10_000,
    };
    await admin.set(c.keys.coordinator("coord-fresh"), JSON.stringify(heartbeat), "PX", 10_000);
    await c.agentRan("agent-f", "coord-fresh");
    expect((await d.placeAgent("agent-f")).id).toBe("coord-fresh");
    expect(c.ids(d)).toEqual(["coord-fresh", "coord-known"]);
    expect(c.connects).toEqual(["coord-fresh"]);
  });

  it("a replicated agent whose home is gone resumes on a replicated coordinator, never a non-replicated one", async () => {
    const c = cluster();
    await c.register("coord-r", { instances: 800, capacity: 1000, replicated: true });
    await c.register("coord-n1", { instances: 0, capacity: 1000 });
    await c.register("coord-n2", { instances: 0, capacity: 1000 });
    await c.agentRan("agent-r", "coord-gone", { replicatedBy: "coord-gone" });
    const d = await c.gateway();
    expect(c.ids(d)).toEqual(["coord-n1", "coord-n2", "coord-r"]);
    expect(await placeAgentMany(d, "agent-r", 30)).toEqual(new Map([["coord-r", 30]]));
    expect(c.connects).not.toContain("coord-n1");
    expect(c.connects).not.toContain("coord-n2");
  });

  it("spreads resumed agents over every replicated coordinator", async () => {
    const c = cluster();
    await c.register("coord-r1", { replicated: true });
    await c.register("coord-r2", { replicated: true });
    await c.register("coord-n", { instances: 0 });
    await c.agentRan("agent-r", "coord-gone", { replicatedBy: "coord-r1" });
    const d = await c.gateway();
    const counts = await placeAgentMany(d, "agent-r", 20);
    expect([...counts.keys()].sort()).toEqual(["coord-r1", "coord-r2"]);
  });

  it("after the home coordinator leaves, its replicated agent resumes elsewhere", async () => {
    const c = cluster();
    const home = await c.register("coord-home", { replicated: true });
    await c.register("coord-r", { instances: 70, replicated: true });
    await c.register("coord-n", { instances: 0 });
    await c.agentRan("agent-r", "coord-home", { replicatedBy: "coord-home" });
    const d = await c.gateway();
    expect((await d.placeAgent("agent-r")).id).toBe("coord-home");
    await home.stop();
    await waitFor(() => !c.ids(d).includes("coord-home"), "coord-home to leave the view");
    expect(await placeAgentMany(d, "agent-r", 10)).toEqual(new Map([["coord-r", 10]]));
  });

  it("a replicated agent whose home is gone, with no replicated coordinator registered -> Unavailable", async () => {
    const c = cluster();
    await c.register("coord-n", { instances: 0 });
    await c.agentRan("agent-r", "coord-gone", { replicatedBy: "coord-gone" });
    const d = await c.gateway();
    const error = await rejectionOf(d.placeAgent("agent-r"));
    expect(error.code).toBe(Code.Unavailable);
    expect(error.rawMessage).toMatch(/no coordinator with replication/);
  });

  it("a non-replicated agent whose home is gone -> Unavailable 'not replicated' (never started afresh elsewhere)", async () => {
    const c = cluster();
    await c.register("coord-r", { instances: 0, replicated: true });
    await c.register("coord-n", { instances: 0 });
    await c.agentRan("agent-local", "coord-gone");
    const d = await c.gateway();
    const error = await rejectionOf(d.placeAgent("agent-local"));
    expect(error.code).toBe(Code.Unavailable);
    expect(error.rawMessage).toMatch(/not replicated/);
    expect(error.rawMessage).toContain("agent-local");
    expect(error.rawMessage).toContain("coord-gone");
    expect(c.connects).toEqual([]);
  });

  it("recordAgent(agentId, coordinatorId) makes that coordinator the agent's home", async () => {
    const c = cluster();
    await c.register("coord-a", { instances: 0 });
    await c.register("coord-b", { instances: 90 });
    const d = await c.gateway();
    await d.recordAgent("agent-fork", "coord-b");
    expect(await admin.get(c.keys.agent("agent-fork"))).toBe("coord-b");
    expect(await placeAgentMany(d, "agent-fork", 5)).toEqual(new Map([["coord-b", 5]]));
    // Recording again moves the home.
    await d.recordAgent("agent-fork", "coord-a");
    expect(await placeAgentMany(d, "agent-fork", 5)).toEqual(new Map([["coord-a", 5]]));
    // Recorded on a coordinator that is not registered (and no replicas): refused.
    await d.recordAgent("agent-fork", "coord-nowhere");
    const error = await rejectionOf(d.placeAgent("agent-fork"));
    expect(error.code).toBe(Code.Unavailable);
    expect(error.rawMessage).toMatch(/not replicated/);
  });

  it("an aborted request -> Canceled; a closed directory -> Unavailable", async () => {
    const c = cluster();
    await c.register("coord-a");
    const d = await c.gateway();
    const aborted = new AbortController();
    aborted.abort();
    expect((await rejectionOf(d.placeAgent("agent-x", aborted.signal))).code).toBe(Code.Canceled);
    await d.close();
    const closed = await rejectionOf(d.placeAgent("agent-x"));
    expect(closed.code).toBe(Code.Unavailable);
    expect(closed.rawMessage).toMatch(/closed/);
  });
});

describe("ValkeyCoordinatorDirectory.place({ replicated: true })", () => {
  it("places only on replicated coordinators", async () => {
    const c = cluster();
    await c.register("coord-r", { instances: 90, replicated: true });
    await c.register("coord-n", { instances: 0 });
    const d = await c.gateway();
    for (let i = 0; i < 10; i++) expect((await d.place(undefined, { replicated: true })).id).toBe("coord-r");
    // Without the requirement the idle non-replicated one is preferred.
    expect((await d.place()).id).toBe("coord-n");
  });

  it("a read (replication status) is not counted as a placement; a placement is, until the next heartbeat", async () => {
    const c = cluster();
    await c.register("coord-r", { replicated: true });
    const d = await c.gateway();
    const pending = (): number => d.members().find((m) => m.coordinatorId === "coord-r")?.pending ?? -1;
    for (let i = 0; i < 5; i++) await d.place(undefined, { replicated: true, read: true });
    expect(pending()).toBe(0);
    await d.place(undefined, { replicated: true });
    expect(pending()).toBe(1);
  });

  it("no replicated coordinator registered -> Unavailable", async () => {
    const c = cluster();
    await c.register("coord-n1");
    await c.register("coord-n2");
    const d = await c.gateway();
    const error = await rejectionOf(d.place(undefined, { replicated: true }));
    expect(error.code).toBe(Code.Unavailable);
    expect(error.rawMessage).toMatch(/no coordinator with replication \(--replicate-bucket\) is registered/);
  });

  it("no coordinator at all -> Unavailable", async () => {
    const c = cluster();
    const d = await c.gateway();
    const error = await rejectionOf(d.place(undefined, { replicated: true }));
    expect(error.code).toBe(Code.Unavailable);
    expect(error.rawMessage).toMatch(/no coordinator with replication/);
  });

  it("replicated coordinators that are all full or draining -> Unavailable naming why (counting replicated ones only)", async () => {
    const c = cluster();
    await c.register("coord-r-full", { instances: 10, capacity: 10, replicated: true });
    await c.register("coord-r-draining", { draining: true, replicated: true });
    await c.register("coord-n", { instances: 0 });
    const d = await c.gateway();
    const error = await rejectionOf(d.place(undefined, { replicated: true }));
    expect(error.code).toBe(Code.Unavailable);
    expect(error.rawMessage).toMatch(/2 registered, 1 draining, 1 at capacity/);
  });
});

describe("the replicated flag of heartbeats", () => {
  const base = {
    coordinatorId: "coord-1",
    address: "http://coord-1.test:7100",
    instances: 1,
    capacity: 10,
    cpuLoad: 0.5,
    memoryBytes: 1024,
    draining: false,
    startedAt: 1,
    version: "v",
    heartbeatAt: 2,
    ttlMs: 3000,
  };

  it("heartbeatFromJson keeps replicated: true", () => {
    expect(heartbeatFromJson({ ...base, replicated: true })).toEqual({ ...base, replicated: true });
    expect(parseHeartbeat(JSON.stringify({ ...base, replicated: true }))?.replicated).toBe(true);
    const event = parseMembershipEvent(JSON.stringify({ type: "join", coordinatorId: "coord-1", info: { ...base, replicated: true } }));
    expect(event).toEqual({ type: "join", coordinatorId: "coord-1", info: { ...base, replicated: true } });
  });

  it.each([false, "true", 1, null, {}])("heartbeatFromJson drops replicated: %j", (value) => {
    const parsed = heartbeatFromJson({ ...base, replicated: value });
    expect(parsed).toEqual(base);
    expect(parsed !== undefined && "replicated" in parsed).toBe(false);
  });

  it("a heartbeat without the field has none", () => {
    const parsed = heartbeatFromJson(base);
    expect(parsed).toEqual(base);
    expect(parsed !== undefined && "replicated" in parsed).toBe(false);
  });

  it("a registration reports replicated only when its load says so, and the gateway sees it", async () => {
    const c = cluster();
    await c.register("coord-r", { replicated: true });
    await c.register("coord-n");
    expect(JSON.parse((await admin.get(c.keys.coordinator("coord-r"))) ?? "null")).toMatchObject({ coordinatorId: "coord-r", replicated: true });
    expect(JSON.parse((await admin.get(c.keys.coordinator("coord-n"))) ?? "null")).not.toHaveProperty("replicated");
    const d = await c.gateway();
    const byId = new Map(d.members().map((m) => [m.coordinatorId, m]));
    expect(byId.get("coord-r")?.replicated).toBe(true);
    expect(byId.get("coord-n")?.replicated).toBeUndefined();
  });
});
