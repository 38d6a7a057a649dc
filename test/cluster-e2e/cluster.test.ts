/**
 * The cluster as an operator runs it: redis-server, an S3 endpoint (s3rver), 3 coordinators and 2
 * gateways, each `node bin/podium.js …` in its own OS process. One cluster serves the whole file, so
 * the tests run in order and each leaves the cluster as the next one expects:
 * deploy + spread + any gateway serves any instance -> cluster secret -> a dropped gateway-coordinator
 * connection -> kill -9 -> a hung coordinator (SIGSTOP) -> drain -> Valkey restart. Gateways reach the
 * coordinators through TCP proxies, so a test can cut their connections while both sides stay up.
 */
import { describe, it, expect, beforeAll, afterAll } from "@jest/globals";
import fs from "node:fs";
import path from "node:path";
import { Redis } from "ioredis";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { CoordinatorService } from "../../gen/podium/v1/coordinator_service_pb.js";
import { InstanceService } from "../../gen/podium/v1/instance_service_pb.js";
import { packBundle } from "../../services/registry/bundle-archive.js";
import { REPO_ROOT } from "../../services/coordinator/runtime-commands.js";
import type { JsonObject } from "../../services/shared/json.js";
import { CLUSTER_API_KEY, deployWithCli, pidAlive, startCluster, until, type PodiumProcess, type TestCluster } from "../helpers/cluster-processes.js";
import { WsClient } from "../helpers/dev-fixture.js";

let cluster: TestCluster;
let A: string; // gateway A: deployments go through it
let B: string; // gateway B: instances are created through it
/** instance id -> the instance JSON from its 201. */
const instances = new Map<string, JsonObject>();

beforeAll(async () => {
  cluster = await startCluster({ coordinators: 3, gateways: 2, proxyCoordinators: true });
  [A, B] = cluster.gateways.map((g) => g.url) as [string, string];
}, 60_000);

afterAll(async () => {
  await cluster?.close();
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function create(deploymentId: string, base = B): Promise<JsonObject> {
  const res = await cluster.api(base, "POST", "/api/v1/instances", { deployment_id: deploymentId });
  // `starting`: a warm runner of a bundle that already started on that coordinator is answered while it loads (docs/api.md).
  expect({ status: res.status, body: res.json }).toMatchObject({ status: 201, body: { deployment_id: expect.stringMatching(/@s3$/), status: expect.stringMatching(/^(ready|starting)$/) } });
  instances.set(String(res.json.instance_id), res.json);
  return res.json;
}

const coordinatorOf = (instance: JsonObject): PodiumProcess => {
  const found = cluster.coordinators.find((c) => c.id === instance.coordinator_id);
  if (!found) throw new Error(`no coordinator ${String(instance.coordinator_id)}`);
  return found;
};
const isEnd = (f: JsonObject): boolean => f.messageType === "stream_end";
const isTerminated = (f: JsonObject): boolean => f.messageType === "terminated";
const textOf = (f: JsonObject): string => String((f.content as JsonObject | undefined)?.text ?? "");

describe("a cluster of separate processes: 2 gateways, 3 coordinators, Valkey, S3", () => {
  it("deploys through gateway A (CLI and REST, once per content), runs instances through gateway B, spread over every coordinator", async () => {
    const cli = await deployWithCli(path.join(REPO_ROOT, "examples/echo-ts"), A);
    expect({ code: cli.code, stderr: cli.stderr, result: cli.result }).toMatchObject({ code: 0, result: { deployment_id: "echo-ts:1.0.0@s3", created: true } });
    for (const dir of ["examples/echo-py", "test/fixtures/bundles/slow-ts"]) {
      const archive = await packBundle(path.join(REPO_ROOT, dir));
      const first = await cluster.api(A, "POST", "/api/v1/deployments", archive);
      expect(first).toMatchObject({ status: 201, json: { registry: "s3", created: true } });
      const again = await cluster.api(A, "POST", "/api/v1/deployments", archive); // same content: a no-op
      expect(again).toMatchObject({ status: 200, json: { digest: first.json.digest, created: false } });
    }
    // Gateway B never saw an upload: it reads the registry (S3).
    const listed = await cluster.api(B, "GET", "/api/v1/deployments");
    expect((listed.json.deployments as JsonObject[]).map((d) => d.deployment_id).sort()).toEqual(["echo-py:1.0.0@s3", "echo-ts:1.0.0@s3", "slow-ts:1.0.0@s3"]);

    // "@local" ids (dev mode, the seed's clients) resolve to the cluster's registry.
    const created = await Promise.all(["echo-ts", "echo-py"].flatMap((name) => [1, 2, 3, 4, 5, 6].map(() => create(`${name}:1.0.0@local`))));
    // Each coordinator downloaded each bundle once, checked it and caches it by digest for all its instances.
    const digests = new Map((listed.json.deployments as JsonObject[]).map((d) => [String(d.name), String(d.digest).replace(/^sha256:/, "")]));
    for (const coordinator of cluster.coordinators) {
      const ran = new Set(created.filter((i) => i.coordinator_id === coordinator.id).map((i) => digests.get(String(i.deployment_id).split(":")[0])));
      const cached = fs.readdirSync(path.join(coordinator.dataDir, "bundles")).filter((name) => !name.startsWith(".")); // .tmp-*: extractions in flight
      expect(cached.sort()).toEqual([...ran].sort());
    }
    const perCoordinator = new Map<string, number>();
    for (const i of created) perCoordinator.set(String(i.coordinator_id), (perCoordinator.get(String(i.coordinator_id)) ?? 0) + 1);
    console.log(`12 instances placed through gateway B: ${JSON.stringify(Object.fromEntries(perCoordinator))}`);
    expect([...perCoordinator.keys()].sort()).toEqual(cluster.coordinators.map((c) => c.id).sort());

    // Any gateway serves any instance: one socket through each, a message sent through one reaches both.
    await Promise.all(
      created.map(async (instance, n) => {
        const id = String(instance.instance_id);
        const [viaA, viaB] = await Promise.all([cluster.connect(A, id), cluster.connect(B, id)]);
        (n % 2 === 0 ? viaA : viaB).send({ type: "process_message", content: { text: `hello ${n}` } });
        for (const ws of [viaA, viaB]) {
          await ws.waitFor(isEnd, 15_000);
          expect(
            ws.frames
              .filter((f) => f.messageType === "stream_update")
              .map(textOf)
              .join(""),
          ).toBe(`hello ${n}`);
          // The turn ends with turn.done (after its workspace capture): then both gateways report the same.
          await ws.waitFor((f) => f.messageType === "turn.done", 15_000);
          ws.close();
        }
        const [getA, getB] = await Promise.all([cluster.api(A, "GET", `/api/v1/instances/${id}`), cluster.api(B, "GET", `/api/v1/instances/${id}`)]);
        expect(getA).toMatchObject({ status: 200, json: { instance_id: id, coordinator_id: instance.coordinator_id } });
        expect(getB.json).toEqual(getA.json);
      }),
    );
    const list = await cluster.api(A, "GET", "/api/v1/instances");
    expect((list.json.instances as JsonObject[]).map((i) => i.instance_id).sort()).toEqual(created.map((i) => i.instance_id).sort());
    // The client contract's /events WebSocket is there too: `podium gateway` mounts the translator.
    const events = await WsClient.open(`${B.replace(/^http/, "ws")}/api/v1/instances/${String(created[0]?.instance_id)}/events?api_key=${CLUSTER_API_KEY}`);
    events.send({ type: "process_message", content: { text: "through events" } });
    await events.waitFor((f) => f.type === "turn_complete", 15_000);
    events.close();
  }, 60_000);

  it("coordinators refuse internal calls without the cluster secret (UNAUTHENTICATED)", async () => {
    const coordinator = cluster.coordinators[0] as PodiumProcess;
    const call = async (authorization?: string): Promise<string> => {
      const transport = createGrpcTransport({
        baseUrl: coordinator.url,
        interceptors: [(next) => (req) => (authorization && req.header.set("authorization", authorization), next(req))],
      });
      try {
        const { info } = await createClient(CoordinatorService, transport).getCoordinatorInfo({}, { timeoutMs: 5000 });
        await createClient(InstanceService, transport).listInstances({}, { timeoutMs: 5000 });
        return `OK ${info?.coordinatorId ?? ""}`;
      } catch (error) {
        return Code[ConnectError.from(error).code];
      }
    };
    expect(await call()).toBe("Unauthenticated");
    expect(await call("Bearer not-the-secret")).toBe("Unauthenticated");
    expect(await call(`Bearer ${cluster.apiKey}`)).toBe("Unauthenticated"); // a client API key is not the cluster secret
    expect(await call(`Bearer ${cluster.secret}`)).toBe(`OK ${coordinator.id}`);
  });

  it("a dropped gateway-coordinator connection (both processes up) is resumed from the last seq: no gap, no duplicate, no false `terminated`", async () => {
    const slow = await create("slow-ts:1.0.0", A);
    const sockets = await Promise.all([cluster.connect(A, String(slow.instance_id)), cluster.connect(B, String(slow.instance_id))]);
    (sockets[0] as WsClient).send({ type: "process_message", content: { n: 200, delay: 10 } });
    for (const ws of sockets) await ws.waitFor((f) => textOf(f) === "30 ", 15_000);
    const seen = sockets.map((ws) => ws.frames.length);
    const cutAt = Date.now();
    const cut = cluster.cutLinks(String(slow.coordinator_id));
    expect(cut).toBeGreaterThanOrEqual(2); // one HTTP/2 connection from each gateway
    const resumedMs = await Promise.all(sockets.map(async (ws, i) => (await ws.waitFor((f) => ws.frames.indexOf(f) >= (seen[i] ?? 0) + 5, 15_000), Date.now() - cutAt)));
    console.log(`cut ${cut} gateway-coordinator connections: both streams flowing again within ${resumedMs.join(" / ")} ms`);
    for (const ws of sockets) {
      await ws.waitFor((f) => f.messageType === "turn.done", 15_000);
      const updates = ws.frames.filter((f) => f.messageType === "stream_update");
      expect(updates.map(textOf)).toEqual(Array.from({ length: 200 }, (_, i) => `${i} `));
      const seqs = ws.frames.map((f) => Number(f.seq));
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      expect(new Set(seqs).size).toBe(seqs.length);
      expect(ws.frames.filter(isTerminated)).toEqual([]);
      expect(ws.closed).toBeUndefined();
    }
    expect((await cluster.api(B, "GET", `/api/v1/instances/${String(slow.instance_id)}`)).status).toBe(200);
    // The same sockets keep working.
    (sockets[1] as WsClient).send({ type: "process_message", content: { n: 3, delay: 1 } });
    for (const ws of sockets) await ws.waitFor((f) => f.messageType === "turn.done" && (f.content as JsonObject).turn === 2, 15_000);
    for (const ws of sockets) ws.close();
  }, 60_000);

  it("kill -9 of a coordinator mid-stream: clients get `terminated`, GET answers 404, new instances go to the survivors", async () => {
    const slow = await create("slow-ts:1.0.0@local");
    const victim = coordinatorOf(slow);
    const victimInstances = [...instances.values()].filter((i) => i.coordinator_id === victim.id);
    const sockets = await Promise.all([cluster.connect(A, String(slow.instance_id)), cluster.connect(B, String(slow.instance_id))]);
    (sockets[0] as WsClient).send({ type: "process_message", content: { n: 2000, delay: 10 } });
    for (const ws of sockets) await ws.waitFor((f) => textOf(f) === "20 ", 15_000);

    const killedAt = Date.now();
    expect(await victim.kill()).toEqual({ code: null, signal: "SIGKILL" });
    const terminated = await Promise.all(sockets.map(async (ws) => ({ frame: await ws.waitFor(isTerminated, 15_000), ms: Date.now() - killedAt, closed: await ws.waitClosed() })));
    // Each gateway drops the coordinator on its own refresh (≤ 1 s apart): ask both.
    const gone = await until(async () => {
      const results = await Promise.all([A, B].flatMap((g) => victimInstances.map((i) => cluster.api(g, "GET", `/api/v1/instances/${String(i.instance_id)}`))));
      return results.every((r) => r.status === 404) ? results : undefined;
    }, "GET of the victim's instances to answer 404 through both gateways");
    const goneMs = Date.now() - killedAt;
    console.log(
      `kill -9 ${victim.id}: clients got terminated after ${terminated.map((t) => t.ms).join(" / ")} ms (reason "${String((terminated[0]?.frame.content as JsonObject).reason)}"); GET answered 404 through both gateways after ${goneMs} ms`,
    );
    for (const { frame, closed } of terminated) {
      expect(frame).toMatchObject({ instanceId: slow.instance_id, content: { reason: "coordinator lost", coordinator_id: victim.id } });
      expect(closed.code).toBe(1000);
      expect(frame.seq).toBeGreaterThan(20);
    }
    for (const t of terminated) expect(t.ms).toBeLessThanOrEqual(5000);
    expect(goneMs).toBeLessThanOrEqual(5000);
    for (const r of gone.value) expect(r.json).toMatchObject({ error: { code: "not_found", message: expect.stringContaining(`coordinator ${victim.id}, which is gone`) } });
    // The victim's agents did not outlive it.
    await until(async () => (victimInstances.every((i) => !pidAlive(Number(i.pid))) ? true : undefined), "the victim's agent processes to exit", 5000);

    const after = await Promise.all([1, 2, 3, 4, 5, 6].map((n) => create(n % 2 ? "echo-ts:1.0.0" : "echo-py:1.0.0", n % 2 ? A : B)));
    expect(after.filter((i) => i.coordinator_id === victim.id)).toEqual([]);
    const listed = await cluster.api(B, "GET", "/api/v1/instances");
    expect((listed.json.instances as JsonObject[]).filter((i) => i.coordinator_id === victim.id)).toEqual([]);
  }, 60_000);

  it("a coordinator that hangs with its sockets open (SIGSTOP) is dropped when its heartbeat expires: clients get `terminated`, never a silent hang", async () => {
    // A new coordinator joins (scale-out) and takes placements; its slow instance is the one that hangs.
    const frozen = await cluster.addCoordinator();
    const { value: slow } = await until(
      async () => {
        const s = await create("slow-ts:1.0.0", A);
        return s.coordinator_id === frozen.id ? s : undefined;
      },
      `a placement on the new coordinator ${frozen.id}`,
      15_000,
      0,
    );
    const sockets = await Promise.all([cluster.connect(A, String(slow.instance_id)), cluster.connect(B, String(slow.instance_id))]);
    (sockets[1] as WsClient).send({ type: "process_message", content: { n: 2000, delay: 10 } });
    for (const ws of sockets) await ws.waitFor((f) => textOf(f) === "20 ", 15_000);

    const frozenAt = Date.now();
    frozen.signal("SIGSTOP");
    try {
      const terminated = await Promise.all(sockets.map(async (ws) => ({ frame: await ws.waitFor(isTerminated, 15_000), ms: Date.now() - frozenAt })));
      const { ms: goneMs } = await until(async () => {
        const r = await cluster.api(B, "GET", `/api/v1/instances/${String(slow.instance_id)}`);
        return r.status === 404 ? r : undefined;
      }, "GET of the hung coordinator's instance to answer 404");
      console.log(
        `SIGSTOP ${frozen.id}: clients got terminated after ${terminated.map((t) => t.ms).join(" / ")} ms (reason "${String((terminated[0]?.frame.content as JsonObject).reason)}"); GET answered 404 ${goneMs} ms after that`,
      );
      for (const { frame, ms } of terminated) {
        expect(frame).toMatchObject({ content: { reason: "coordinator lost", coordinator_id: frozen.id } });
        expect(ms).toBeLessThanOrEqual(5000);
      }
      for (const ws of sockets) expect((await ws.waitClosed()).code).toBe(1000);
      const next = await Promise.all([1, 2, 3].map(() => create("echo-ts:1.0.0", B)));
      expect(next.filter((i) => i.coordinator_id === frozen.id)).toEqual([]);
    } finally {
      await frozen.kill();
    }
  }, 60_000);

  it("SIGTERM drains a coordinator: no new placements on it, the running turn finishes, its instances end, it deregisters and exits 0", async () => {
    const survivors = cluster.coordinators.filter((c) => c.alive);
    expect(survivors.length).toBeGreaterThanOrEqual(2); // 2 when the whole file runs
    // A slow instance on each survivor; the one on the coordinator to drain runs a ~2 s turn.
    const slows = new Map<string, JsonObject>();
    while (slows.size < survivors.length) {
      const s = await create("slow-ts:1.0.0");
      if (!slows.has(String(s.coordinator_id))) slows.set(String(s.coordinator_id), s);
    }
    const drained = survivors[0] as PodiumProcess;
    const slow = slows.get(drained.id) as JsonObject;
    const drainedInstances = [...instances.values()].filter((i) => i.coordinator_id === drained.id);
    const ws = await cluster.connect(A, String(slow.instance_id));
    ws.send({ type: "process_message", content: { n: 40, delay: 50 } });
    await ws.waitFor((f) => textOf(f) === "0 ");

    const admin = new Redis(cluster.redis.url);
    try {
      const termAt = Date.now();
      const stopping = drained.stop("SIGTERM");
      await until(async () => ((await admin.get(`podium:coordinator:${drained.id}`))?.includes('"draining":true') ? true : undefined), "the draining flag in Valkey", 5000, 10);
      await sleep(100); // pub/sub delivery to the gateways
      const during = await Promise.all([1, 2, 3, 4].map(() => create("echo-ts:1.0.0", B)));
      expect(during.filter((i) => i.coordinator_id === drained.id)).toEqual([]);

      const exit = await stopping;
      const turnEnd = Date.parse(String(ws.frames.find((f) => f.messageType === "turn.done" || f.messageType === "complete")?.timestamp));
      console.log(`SIGTERM ${drained.id}: exited ${Date.now() - termAt} ms later, ${Date.now() - turnEnd} ms after its running turn ended`);
      expect(exit).toEqual({ code: 0, signal: null });
      // The turn ran to its end, then the instance was stopped cleanly.
      await ws.waitFor(isTerminated);
      const types = ws.frames.map((f) => f.messageType);
      expect(ws.frames.filter((f) => f.messageType === "stream_update").map(textOf)).toEqual(Array.from({ length: 40 }, (_, i) => `${i} `));
      expect(types.indexOf("terminating")).toBeGreaterThan(types.lastIndexOf("stream_update"));
      expect(ws.frames.find(isTerminated)?.content).toMatchObject({ reason: "stopped" });
      expect(drained.output()).toMatch(/deregistered from service discovery/);
      // Deregistered: gone from Valkey at once, its instances are reported gone, placements avoid it.
      expect(await admin.sismember("podium:coordinators", drained.id)).toBe(0);
      expect(await admin.exists(`podium:coordinator:${drained.id}`)).toBe(0);
      for (const i of drainedInstances) expect((await cluster.api(B, "GET", `/api/v1/instances/${String(i.instance_id)}`)).status).toBe(404);
      for (const i of drainedInstances) expect(pidAlive(Number(i.pid))).toBe(false);
      const afterDrain = await create("echo-py:1.0.0", A);
      expect(afterDrain.coordinator_id).not.toBe(drained.id);
    } finally {
      admin.disconnect();
    }
  }, 60_000);

  it("Valkey stopped: clear 503 UNAVAILABLE for what needs discovery, instances a gateway knows keep working, nothing crashes; restarted (empty): registrations come back and requests recover by themselves", async () => {
    const survivor = cluster.coordinators.find((c) => c.alive) as PodiumProcess;
    const live = await create("echo-ts:1.0.0", B);
    expect(live.coordinator_id).toBe(survivor.id);
    const ws = await cluster.connect(A, String(live.instance_id));
    // Created through B and never looked up through A: A must ask Valkey where it is.
    const unseen = await create("echo-py:1.0.0", B);

    await cluster.redis.pause();
    const downAt = Date.now();
    const down = await Promise.all([
      cluster.api(B, "POST", "/api/v1/instances", { deployment_id: "echo-ts:1.0.0" }),
      cluster.api(A, "GET", `/api/v1/instances/${String(unseen.instance_id)}`),
      cluster.api(A, "GET", "/api/v1/instances"),
    ]);
    console.log(`Valkey down: 3 REST calls answered 503 within ${Date.now() - downAt} ms`);
    for (const r of down) expect(r).toMatchObject({ status: 503, json: { error: { code: "unavailable", message: expect.stringMatching(/Valkey/) } } });
    // An instance never moves, so a gateway that located it keeps reaching it without Valkey: its open
    // socket goes on working, and so do its REST calls there.
    expect(await cluster.api(A, "GET", `/api/v1/instances/${String(live.instance_id)}`)).toMatchObject({ status: 200, json: { status: "ready" } });
    ws.send({ type: "process_message", content: { text: "during the blackout" } });
    await ws.waitFor((f) => textOf(f) === "blackout", 20_000);
    await sleep(1500); // several failed heartbeats and refreshes
    expect(cluster.gateways.every((g) => g.alive)).toBe(true);
    expect(survivor.alive).toBe(true);

    const restartedAt = Date.now();
    await cluster.redis.restart();
    const admin = new Redis(cluster.redis.url);
    try {
      const { ms: registeredMs } = await until(async () => ((await admin.smembers("podium:coordinators")).includes(survivor.id) ? true : undefined), "the survivor to re-register", 10_000, 20);
      const { ms: recoveredMs } = await until(
        async () => {
          const [a, b] = await Promise.all([A, B].map((g) => cluster.api(g, "GET", `/api/v1/instances/${String(live.instance_id)}`)));
          return a?.status === 200 && b?.status === 200 ? true : undefined;
        },
        "GET through both gateways to work again",
        15_000,
        50,
      );
      console.log(`Valkey restarted empty: ${survivor.id} re-registered after ${registeredMs} ms, GET through both gateways worked again after ${recoveredMs} ms`);
      const again = await until(
        async () => {
          const res = await cluster.api(B, "POST", "/api/v1/instances", { deployment_id: "echo-py:1.0.0" });
          return res.status === 201 ? res.json : undefined;
        },
        "placement to work again",
        10_000,
        100,
      );
      expect(again.value.coordinator_id).toBe(survivor.id);
      ws.send({ type: "process_message", content: { text: "after the outage" } });
      await until(async () => (ws.frames.some((f) => textOf(f) === "outage") ? true : undefined), "the echo through the old socket", 20_000).catch((err: unknown) => {
        // What the socket got and what the processes said, to tell a slow turn from a lost one.
        const tail = (p: PodiumProcess) => `${p.role} ${p.id}:\n${p.output().slice(-3000)}`;
        throw new Error(`${String(err)}; frames since the outage: ${JSON.stringify(ws.frames.slice(-12))}\n${[survivor, ...cluster.gateways].map(tail).join("\n")}`);
      });
      expect(ws.closed).toBeUndefined();
      expect(Date.now() - restartedAt).toBeLessThan(15_000);
      // No process of the cluster ever exited on its own, through every test of this file.
      expect([...cluster.gateways, ...cluster.coordinators].filter((p) => p.crashed).map((p) => p.id)).toEqual([]);
    } finally {
      admin.disconnect();
    }
  }, 60_000);
});
