/**
 * Reliability of the gateway side of a cluster, through real processes: redis-server, s3rver, one
 * gateway and two coordinators, each `node bin/podium.js …` in its own OS process (issue 12). One
 * cluster serves the file; the tests run in order and each leaves the cluster as the next expects:
 * frames in order -> a paused reader is closed with 4008 and loses nothing -> a hung coordinator's
 * circuit opens and closes again -> kill -9 in the middle of creates (failover, no duplicate agent,
 * idle clients get `terminated`).
 */
import { describe, it, expect, beforeAll, afterAll } from "@jest/globals";
import path from "node:path";
import { Redis } from "ioredis";
import { WebSocket } from "ws";
import { packBundle } from "../../services/registry/bundle-archive.js";
import { REPO_ROOT } from "../../services/coordinator/runtime-commands.js";
import type { JsonObject } from "../../services/shared/json.js";
import { startCluster, until, type PodiumProcess, type TestCluster } from "../helpers/cluster-processes.js";
import type { WsClient } from "../helpers/dev-fixture.js";

let cluster: TestCluster;
let G: string; // the gateway

beforeAll(async () => {
  cluster = await startCluster({ coordinators: 2, gateways: 1 });
  G = (cluster.gateways[0] as PodiumProcess).url;
  for (const dir of ["examples/echo-ts", "test/fixtures/bundles/flood-ts", "test/fixtures/bundles/slow-ts"]) {
    const deployed = await cluster.api(G, "POST", "/api/v1/deployments", await packBundle(path.join(REPO_ROOT, dir)));
    if (deployed.status >= 300) throw new Error(`deploy ${dir}: ${deployed.status} ${JSON.stringify(deployed.json)}`);
  }
}, 90_000);

afterAll(async () => {
  await cluster?.close();
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const textOf = (f: JsonObject): string => String((f.content as JsonObject | undefined)?.text ?? "");
const isTurnDone = (f: JsonObject): boolean => f.messageType === "turn.done";

async function create(deploymentId: string): Promise<JsonObject> {
  const res = await cluster.api(G, "POST", "/api/v1/instances", { deployment_id: deploymentId });
  // `starting`: a warm runner of a bundle that already started on that coordinator is answered while it loads (docs/api.md).
  expect({ status: res.status, body: res.json }).toMatchObject({ status: 201, body: { status: expect.stringMatching(/^(ready|starting)$/) } });
  return res.json;
}

/** A value of the gateway's Prometheus metrics (0 when absent). */
async function metric(name: string): Promise<number> {
  const res = await fetch(`${G}/metrics`, { headers: { authorization: `Bearer ${cluster.apiKey}` } });
  const line = (await res.text()).split("\n").find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(" ")[1]) : 0;
}

/** A raw `ws` client that records frames and can stop reading (pause) with its socket open. */
class RawClient {
  readonly frames: JsonObject[] = [];
  closed: { code: number; reason: string } | undefined;
  private constructor(readonly ws: WebSocket) {
    ws.on("message", (data) => this.frames.push(JSON.parse(data.toString()) as JsonObject));
    ws.on("close", (code, reason) => (this.closed = { code, reason: reason.toString() }));
  }
  static open(instanceId: string, query = ""): Promise<RawClient> {
    const ws = new WebSocket(`${G.replace(/^http/, "ws")}/api/v1/instances/${instanceId}/connect?api_key=${cluster.apiKey}${query}`);
    return new Promise((resolve, reject) => {
      ws.once("open", () => resolve(new RawClient(ws)));
      ws.once("error", reject);
    });
  }
}

describe("gateway reliability with coordinator processes (issue 12)", () => {
  it("frames sent in order on one socket reach the agent in that order, on 24 instances over 2 coordinators", async () => {
    const instances: JsonObject[] = [];
    for (let batch = 0; batch < 3; batch++) instances.push(...(await Promise.all(Array.from({ length: 8 }, () => create("echo-ts:1.0.0")))));
    expect(new Set(instances.map((i) => i.coordinator_id)).size).toBe(2);
    const messages = Array.from({ length: 12 }, (_, k) => `m${k}`);
    await Promise.all(
      instances.map(async (instance) => {
        const ws = await cluster.connect(G, String(instance.instance_id));
        // Sizes alternate: a large message's body takes several HTTP/2 frames to arrive, a small one fits in one.
        for (const [k, text] of messages.entries()) ws.send({ type: "process_message", content: { text, ...(k % 2 === 0 ? { pad: "x".repeat(256 * 1024) } : {}) } });
        const settled = (): number => ws.frames.filter((f) => isTurnDone(f) || f.type === "error").length;
        await until(async () => (settled() >= messages.length ? true : undefined), "every turn", 60_000);
        expect(ws.frames.filter((f) => f.type === "error")).toEqual([]);
        // One turn per message, run in the order sent.
        expect(ws.frames.filter((f) => f.messageType === "stream_update").map(textOf)).toEqual(messages);
        ws.close();
      }),
    );
  }, 180_000);

  it("a reader that stops reading is closed with 4008 instead of growing the gateway; reconnecting with after_seq gives every event", async () => {
    const flood = await create("flood-ts:1.0.0");
    const id = String(flood.instance_id);
    const n = 20_000;
    const before = await metric("podium_gateway_ws_slow_closes_total");
    const paused = await RawClient.open(id);
    paused.ws.pause(); // reads nothing more: the TCP window fills, then the gateway's buffer
    paused.ws.send(JSON.stringify({ type: "process_message", content: { n, text: "x".repeat(1000) } }));
    // The gateway gives up on it (it stopped pulling the stream long before): counted, closing with 4008.
    await until(async () => ((await metric("podium_gateway_ws_slow_closes_total")) > before ? true : undefined), "the gateway to close the slow reader", 90_000, 250);
    paused.ws.resume();
    await until(async () => (paused.closed ? true : undefined), "the close frame after the buffered events", 60_000);
    expect(paused.closed).toEqual({ code: 4008, reason: "too slow: reconnect with after_seq" });
    const got = paused.frames.filter((f) => f.messageType === "stream_update").length;
    expect(got).toBeGreaterThan(0);
    expect(got).toBeLessThan(n); // it was cut off before the end
    const lastSeq = Number(paused.frames[paused.frames.length - 1]?.seq);

    const resumed = await cluster.connect(G, id, `after_seq=${lastSeq}`);
    await resumed.waitFor(isTurnDone, 90_000);
    const frames = [...paused.frames, ...resumed.frames];
    const updates = frames.filter((f) => f.messageType === "stream_update");
    expect(updates.map((f) => (f.content as JsonObject).i)).toEqual(Array.from({ length: n }, (_, i) => i));
    const seqs = frames.map((f) => Number(f.seq));
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(frames.map((f) => f.messageType).slice(-2)).toEqual(["stream_end", "turn.done"]);
    resumed.close();
    await cluster.api(G, "DELETE", `/api/v1/instances/${id}?grace_ms=0`);
  }, 240_000);

  it("a coordinator that hangs while its heartbeat key stays (SIGSTOP, key held): its circuit opens, creates go elsewhere, and it comes back half-open", async () => {
    const [frozen, other] = cluster.coordinators as [PodiumProcess, PodiumProcess];
    const admin = new Redis(cluster.redis.url);
    const key = `podium:coordinator:${frozen.id}`;
    // Keeps the frozen coordinator in every gateway's view: only the breaker can take it out.
    let holding = true;
    const holder = (async () => {
      while (holding) {
        await admin.pexpire(key, 3000).catch(() => undefined);
        await sleep(250);
      }
    })();
    const liveOnFrozen = async (): Promise<string[]> => {
      const list = await cluster.api(G, "GET", "/api/v1/instances");
      return (list.json.instances as JsonObject[]).filter((i) => i.coordinator_id === frozen.id && i.status !== "stopping").map((i) => String(i.instance_id));
    };
    const beforeFreeze = await liveOnFrozen();
    const outputBefore = (cluster.gateways[0] as PodiumProcess).output().length;
    frozen.signal("SIGSTOP");
    let resumed = false;
    try {
      // Creates keep working: the ones placed on the frozen coordinator before its circuit opened wait and
      // are then cut and retried; once open, it is skipped.
      const created = await Promise.all(Array.from({ length: 6 }, () => create("echo-ts:1.0.0")));
      expect(created.map((i) => i.coordinator_id)).toEqual(created.map(() => other.id));
      const log = (cluster.gateways[0] as PodiumProcess).output().slice(outputBefore);
      expect(log).toContain(`"msg":"coordinator circuit opened: no placement or calls until a probe answers","service":"gateway","coordinator_id":"${frozen.id}"`);
      expect(await metric("podium_gateway_coordinators_not_answering")).toBe(1);
      // Still in the gateway's view (its key never expired): the breaker alone kept creates off it.
      expect(await admin.exists(key)).toBe(1);
      const more = await Promise.all(Array.from({ length: 4 }, () => create("echo-ts:1.0.0")));
      expect(more.map((i) => i.coordinator_id)).toEqual(more.map(() => other.id));

      frozen.signal("SIGCONT");
      resumed = true;
      holding = false;
      await holder;
      // A half-open probe is answered: placements reach it again.
      const { value: back } = await until(
        async () => {
          // (A create may also fail here on a loaded host: a first agent start just after waking up can be slow.)
          const res = await cluster.api(G, "POST", "/api/v1/instances", { deployment_id: "echo-ts:1.0.0" });
          return res.status === 201 && res.json.coordinator_id === frozen.id ? res.json : undefined;
        },
        `a placement on ${frozen.id} after it woke up`,
        60_000,
        200,
      );
      expect(await metric("podium_gateway_coordinators_not_answering")).toBe(0);
      // The creates it received while frozen were abandoned by the gateway: it stops them, so it runs only
      // the instance a client was told about.
      const { value: added } = await until(
        async () => {
          const added = (await liveOnFrozen()).filter((id) => !beforeFreeze.includes(id));
          return added.length === 1 ? added : undefined;
        },
        "only the acknowledged instance to be added on the coordinator that was frozen",
        30_000,
        250,
      );
      expect(added).toEqual([back.instance_id]);
    } finally {
      if (!resumed) frozen.signal("SIGCONT");
      holding = false;
      await holder;
      admin.disconnect();
    }
  }, 180_000);

  it("kill -9 in the middle of creates: every create answers 201 on the survivor, no agent is started twice, idle clients get `terminated` and 1000", async () => {
    const [victim, survivor] = cluster.coordinators as [PodiumProcess, PodiumProcess];
    // Instances on the victim with a client that has not received a single event.
    const onVictim: JsonObject[] = [];
    await until(
      async () => {
        const instance = await create("slow-ts:1.0.0");
        if (instance.coordinator_id === victim.id) onVictim.push(instance);
        return onVictim.length >= 2 ? true : undefined;
      },
      `two instances on ${victim.id}`,
      60_000,
      0,
    );
    const idle: WsClient[] = await Promise.all(onVictim.map((i) => cluster.connect(G, String(i.instance_id))));
    const liveOnSurvivor = async (): Promise<string[]> => {
      const list = await cluster.api(G, "GET", "/api/v1/instances");
      return (list.json.instances as JsonObject[]).filter((i) => i.coordinator_id === survivor.id).map((i) => String(i.instance_id));
    };
    const before = await liveOnSurvivor();

    const post = () => cluster.api(G, "POST", "/api/v1/instances", { deployment_id: "echo-ts:1.0.0" });
    const inFlight = Array.from({ length: 6 }, post); // some reach the victim as it dies
    await sleep(30);
    await victim.kill();
    const afterKill = await Promise.all(Array.from({ length: 6 }, post)); // while it is still in the gateway's view
    const results = [...(await Promise.all(inFlight)), ...afterKill];
    expect(results.map((r) => r.status)).toEqual(results.map(() => 201));
    // A create the victim answered before it died made an instance of the victim's (it ends with it, like every other of
    // its instances: a warm create can be answered within the 30 ms); every other create went to the survivor.
    expect(afterKill.map((r) => r.json.coordinator_id)).toEqual(afterKill.map(() => survivor.id));
    expect(results.filter((r) => r.json.coordinator_id !== survivor.id && r.json.coordinator_id !== victim.id)).toEqual([]);
    const createdIds = results.filter((r) => r.json.coordinator_id === survivor.id).map((r) => String(r.json.instance_id));
    expect(new Set(results.map((r) => r.json.instance_id)).size).toBe(results.length);
    // Exactly the acknowledged instances were added on the survivor: a retry never started a second agent.
    const after = await liveOnSurvivor();
    expect(after.filter((id) => !before.includes(id)).sort()).toEqual([...createdIds].sort());

    // Clients that had not seen any event get the synthesized `terminated` and a normal close.
    for (const [n, ws] of idle.entries()) {
      const frame = await ws.waitFor((f) => f.messageType === "terminated", 30_000);
      expect(frame).toMatchObject({ instanceId: onVictim[n]?.instance_id, agentId: onVictim[n]?.agent_id, content: { reason: "coordinator lost", coordinator_id: victim.id } });
      expect(ws.frames.filter((f) => f.type === "error")).toEqual([]);
      expect((await ws.waitClosed(30_000)).code).toBe(1000);
    }
  }, 180_000);
});
