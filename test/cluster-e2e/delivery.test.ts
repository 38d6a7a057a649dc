/**
 * The delivery promise across a replicated resume, as an operator runs it: redis-server, s3rver, a gateway
 * and two coordinators as OS processes, replicating with Litestream. An agent has acknowledged messages
 * queued when its host dies (kill -9 of the coordinator and of its Litestream processes); the agent is
 * created again through the gateway and resumes on the survivor from S3. Every acknowledged message that
 * reached the replica ends with `turn.done`: it runs on the survivor, or says why it will not.
 */
import { describe, it, expect, beforeAll, afterAll } from "@jest/globals";
import type { JsonObject } from "../../services/shared/json.js";
import { processesUnder, startReplicatedCluster, until, type PodiumProcess, type TestCluster } from "../helpers/cluster-processes.js";
import { readMessages, turnOutcomes } from "../helpers/delivery-check.js";

let cluster: TestCluster;
let G: string;

beforeAll(async () => {
  ({ cluster, gateway: G } = await startReplicatedCluster("durable-ts"));
}, 60_000);

afterAll(async () => {
  await cluster?.close();
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const api = (method: string, urlPath: string) => cluster.api(G, method, urlPath);

/** Creates an instance of `agentId`, retrying what the gateway answers while the dead coordinator is being declared gone. */
async function createAgent(agentId: string): Promise<JsonObject> {
  const { value } = await until(
    async () => {
      const res = await cluster.api(G, "POST", "/api/v1/instances", { deployment_id: "durable-ts:1.0.0", agent_id: agentId });
      if (res.status === 201) return res.json;
      if (res.status !== 503 && res.status !== 409 && res.status !== 429) throw new Error(`create ${agentId}: ${res.status} ${JSON.stringify(res.json)}`);
      return undefined;
    },
    `an instance of ${agentId}`,
    40_000,
    200,
  );
  return value;
}

describe("acknowledged messages across a replicated resume", () => {
  it("a host dies with messages queued: on the survivor every replicated acknowledged message runs, or gets an error naming why", async () => {
    const agentId = "delivery-replicated";
    const instance = await createAgent(agentId);
    const home = cluster.coordinators.find((c) => c.id === instance.coordinator_id) as PodiumProcess;
    const instanceId = String(instance.instance_id);
    const acked: { turn: number; text: string }[] = [];
    for (let i = 1; i <= 16; i++) {
      const sent = await cluster.api(G, "POST", `/api/v1/instances/${instanceId}/messages`, { content: { text: `r${i}`, delay_ms: 500 } });
      expect(sent.status).toBe(202);
      acked.push({ turn: Number(sent.json.turn), text: `r${i}` });
    }
    const turns = acked.map((a) => a.turn);
    // Longer than the sync window (docs/replication.md: ~1-2 s): every acknowledged message is in S3.
    await sleep(3500);
    const before = turnOutcomes(await readMessages(api, instanceId), turns);
    expect(before.length).toBeLessThan(turns.length - 4);

    // The host dies: the coordinator and its Litestream processes, nothing flushes.
    const litestreams = processesUnder(`${home.dataDir}/replication/`);
    await Promise.all([home.kill(), ...litestreams.map(async (pid) => process.kill(pid, "SIGKILL"))]);

    const resumed = await createAgent(agentId);
    expect(resumed.coordinator_id).not.toBe(home.id);
    const resumedId = String(resumed.instance_id);
    const { value: rows } = await until(
      async () => {
        const all = await readMessages(api, resumedId);
        return turnOutcomes(all, turns).length === turns.length ? all : undefined;
      },
      "every replicated acknowledged message to end",
      60_000,
      200,
    );
    const marker = rows.find((r) => r.message_type === "agent.restored");
    // Restored after an unclean loss, and every acknowledged message had reached the replica.
    expect(Number((marker?.content as JsonObject | undefined)?.last_replicated_seq)).toBeGreaterThanOrEqual(Math.max(...turns));
    const outcomes = turnOutcomes(rows, turns);
    expect(outcomes.map((o) => o.turn)).toEqual(turns); // one end each, in the order sent
    const failed = outcomes.filter((o) => !o.ok);
    expect(failed.length).toBeLessThanOrEqual(6); // the turns whose events did not all reach the replica (the sync window)
    for (const o of failed) expect(o.error).toMatch(/^interrupted: /);
    expect(outcomes.filter((o) => o.ok && o.instanceId === resumedId).length).toBeGreaterThan(0); // the queue ran on the survivor
    console.log(
      `replicated resume: ${turns.length} acknowledged, ${before.length} ended before the kill, ${failed.length} interrupted, ` +
        `${outcomes.filter((o) => o.ok && o.instanceId === resumedId).length} ran on ${String(resumed.coordinator_id)}; agent.restored ${JSON.stringify(marker?.content)}`,
    );
    const state = await cluster.api(G, "GET", `/api/v1/instances/${resumedId}/state`);
    const ok = new Set(outcomes.filter((o) => o.ok).map((o) => o.turn));
    expect((state.json.state as JsonObject).notes).toEqual(acked.filter((a) => ok.has(a.turn)).map((a) => a.text));
    expect((await cluster.api(G, "DELETE", `/api/v1/instances/${resumedId}`)).status).toBe(200);
  }, 120_000);
});
