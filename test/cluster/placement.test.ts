/**
 * Placement: the pure power-of-two-choices rule, and placements through ValkeyCoordinatorDirectory
 * against three registered coordinators (real redis-server; the coordinators are in-test Connect
 * services behind createRouterTransport, so CreateInstance really runs and load really changes).
 */
import { describe, it, expect, beforeAll, afterAll } from "@jest/globals";
import { startRedis, type RedisServer } from "../helpers/redis-server.js";
import { describeNoCapacity, isPlaceable, pickCoordinator, type PlacementCandidate } from "../../services/cluster/placement.js";
import { CoordinatorRegistration } from "../../services/cluster/coordinator-registration.js";
import { ValkeyCoordinatorDirectory } from "../../services/cluster/valkey-directory.js";
import { fakeCoordinator, routerConnector, waitFor, type FakeCoordinator } from "./cluster-test-utils.js";

function candidate(id: string, instances: number, capacity: number, extra: Partial<PlacementCandidate> = {}): PlacementCandidate {
  return { coordinatorId: id, instances, capacity, cpuLoad: 0, draining: false, ...extra };
}

/** Deterministic random source. */
function seeded(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
}

describe("pickCoordinator", () => {
  it("never picks draining or full coordinators", () => {
    const random = seeded(1);
    const all = [candidate("full", 10, 10), candidate("draining", 0, 10, { draining: true }), candidate("zero", 0, 0), candidate("ok", 9, 10)];
    for (let i = 0; i < 200; i++) expect(pickCoordinator(all, random)?.coordinatorId).toBe("ok");
    expect(
      pickCoordinator(
        all.filter((c) => c.coordinatorId !== "ok"),
        random,
      ),
    ).toBeUndefined();
    expect(isPlaceable(candidate("x", 3, 4))).toBe(true);
  });

  it("of the two sampled, takes the lower instances/capacity, then the lower CPU load", () => {
    expect(pickCoordinator([candidate("a", 5, 10), candidate("b", 10, 100)])?.coordinatorId).toBe("b");
    expect(pickCoordinator([candidate("a", 1, 10, { cpuLoad: 0.9 }), candidate("b", 1, 10, { cpuLoad: 0.1 })])?.coordinatorId).toBe("b");
    // With many candidates the most loaded one can never win a comparison.
    const random = seeded(7);
    const many = [candidate("a", 1, 10), candidate("b", 2, 10), candidate("c", 3, 10), candidate("hot", 9, 10)];
    for (let i = 0; i < 500; i++) expect(pickCoordinator(many, random)?.coordinatorId).not.toBe("hot");
  });

  it("explains why nothing is placeable", () => {
    expect(describeNoCapacity([])).toMatch(/no coordinator is registered/);
    expect(describeNoCapacity([candidate("a", 1, 1), candidate("b", 0, 1, { draining: true })])).toMatch(/2 registered, 1 draining, 1 at capacity/);
  });
});

describe("placement through the Valkey directory", () => {
  let redis: RedisServer;
  const fakes = new Map<string, FakeCoordinator>();
  const registrations: CoordinatorRegistration[] = [];
  let directory: ValkeyCoordinatorDirectory;

  beforeAll(async () => {
    redis = await startRedis();
    for (const id of ["coord-1", "coord-2", "coord-3"]) {
      const fake = fakeCoordinator(id, 200);
      fakes.set(id, fake);
      const registration = new CoordinatorRegistration({ redis: redis.url, coordinatorId: id, address: `http://${id}.test:7100`, info: () => fake.load() });
      registrations.push(registration);
      await registration.start();
    }
    directory = new ValkeyCoordinatorDirectory({ redis: redis.url, connect: routerConnector(fakes).connect });
    await waitFor(() => directory.members().length === 3, "three coordinators");
  });

  afterAll(async () => {
    await directory.close();
    for (const r of registrations) await r.stop();
    await redis.stop();
  });

  async function createMany(n: number, concurrency: number): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    let next = 0;
    const worker = async () => {
      while (next < n) {
        next++;
        const coordinator = await directory.place();
        const { instance } = await coordinator.instances.createInstance({ deploymentId: "echo:1.0.0@s3" });
        await directory.recordInstance({ instanceId: instance?.instanceId ?? "", agentId: instance?.agentId ?? "", coordinatorId: coordinator.id });
        counts[coordinator.id] = (counts[coordinator.id] ?? 0) + 1;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    return counts;
  }

  it("spreads new instances evenly across three idle coordinators", async () => {
    const counts = await createMany(300, 8);
    console.log(`placement spread over 3 coordinators (300 instances, 8 concurrent): ${JSON.stringify(counts)}`);
    expect(Object.keys(counts).sort()).toEqual(["coord-1", "coord-2", "coord-3"]);
    for (const n of Object.values(counts)) {
      expect(n).toBeGreaterThanOrEqual(80); // an even share is 100
      expect(n).toBeLessThanOrEqual(120);
    }
    // Every placement is routable from Valkey.
    const someId = fakes.get("coord-2")?.created[0] ?? "";
    expect((await directory.locateInstance(someId)).id).toBe("coord-2");
  });

  it("sends new work away from a coordinator that is already loaded", async () => {
    const loaded = fakes.get("coord-1") as FakeCoordinator;
    loaded.instances += 120; // e.g. a coordinator that restarted with many agents
    await registrations[0]?.heartbeatNow();
    await waitFor(() => directory.members().find((m) => m.coordinatorId === "coord-1")?.instances === loaded.instances, "the new load to be seen");
    const counts = await createMany(90, 4);
    console.log(`placement with coord-1 pre-loaded (+120): ${JSON.stringify(counts)}`);
    expect(counts["coord-1"] ?? 0).toBeLessThan(10);

    // place() itself works from the in-memory view: no Valkey round trip.
    const started = process.hrtime.bigint();
    for (let i = 0; i < 50; i++) await directory.place();
    console.log(`place() took ${(Number(process.hrtime.bigint() - started) / 50 / 1000).toFixed(1)} µs on average (50 serial calls)`);
  });
});
