/**
 * A coordinator process that dies while its agent's Litestream is behind (issue 12): its Litestream
 * outlives it for a final upload, its upload keeper marks the agent in Valkey until that upload is done,
 * and the agent's next owner restores only then, so nothing acknowledged is lost. Real processes:
 * redis-server, s3rver, a gateway and two coordinators, each reaching S3 through a proxy this test can
 * stall (S3 slow or away for one host only).
 */
import { describe, it, expect, beforeAll, afterAll } from "@jest/globals";
import path from "node:path";
import { packBundle } from "../../services/registry/bundle-archive.js";
import { REPO_ROOT } from "../../services/coordinator/runtime-commands.js";
import type { JsonObject } from "../../services/shared/json.js";
import { startCluster, until, type PodiumProcess, type TestCluster } from "../helpers/cluster-processes.js";
import type { WsClient } from "../helpers/dev-fixture.js";

let cluster: TestCluster;
let G: string;

beforeAll(async () => {
  cluster = await startCluster({ coordinators: 2, gateways: 1, replication: true, proxyS3: true });
  G = (cluster.gateways[0] as PodiumProcess).url;
  const deployed = await cluster.api(G, "POST", "/api/v1/deployments", await packBundle(path.join(REPO_ROOT, "test/fixtures/bundles/durable-ts")));
  if (deployed.status !== 201) throw new Error(`deploy: ${deployed.status} ${JSON.stringify(deployed.json)}`);
}, 90_000);

afterAll(async () => {
  await cluster?.close();
});

/** Creates an instance of `agentId`, retrying what the gateway answers 503/409 while the dead coordinator is declared gone. */
async function createAgent(agentId: string): Promise<JsonObject> {
  const { value } = await until(
    async () => {
      const res = await cluster.api(G, "POST", "/api/v1/instances", { deployment_id: "durable-ts:1.0.0", agent_id: agentId });
      if (res.status === 201) return res.json;
      if (res.status !== 503 && res.status !== 409) throw new Error(`create ${agentId}: ${res.status} ${JSON.stringify(res.json)}`);
      return undefined;
    },
    `an instance of ${agentId}`,
    90_000,
    200,
  );
  return value;
}

async function turn(ws: WsClient, instanceId: string, text: string): Promise<void> {
  const sent = await cluster.api(G, "POST", `/api/v1/instances/${instanceId}/messages`, { content: { text } });
  if (sent.status !== 202) throw new Error(`send ${text}: ${sent.status} ${JSON.stringify(sent.json)}`);
  await ws.waitFor((f) => f.messageType === "turn.done" && f.turn === sent.json.turn, 30_000);
}

describe("final upload of a dead coordinator (upload keeper)", () => {
  it("kill -9 of a coordinator while S3 stalls for it: the next owner waits for its Litestream's final upload and restores every acknowledged turn", async () => {
    const agentId = "final-upload";
    const first = await createAgent(agentId);
    const home = cluster.coordinators.find((c) => c.id === first.coordinator_id) as PodiumProcess;
    const instanceId = String(first.instance_id);
    const ws = await cluster.connect(G, instanceId);
    for (const text of ["t1", "t2", "t3"]) await turn(ws, instanceId, text);
    await until(
      async () => {
        const r = await cluster.api(G, "GET", `/api/v1/agents/${agentId}/replication`);
        return r.json.state === "replicating" && r.json.lag_ms === 0 ? true : undefined;
      },
      "the first turns to reach S3",
      30_000,
      100,
    );

    // S3 stalls for the home coordinator only; five more turns are acknowledged, then it dies.
    const link = cluster.s3Link(home.id);
    link.pause();
    const late = ["t4", "t5", "t6", "t7", "t8"];
    for (const text of late) await turn(ws, instanceId, text);
    const killedAt = Date.now();
    await home.kill();
    ws.close();
    // Well past the lease's ttl (5 s): without the keeper, the next owner would restore before this.
    let resumedAt = 0;
    const stall = setTimeout(() => {
      resumedAt = Date.now();
      link.resume();
    }, 9000);
    try {
      const resumed = await createAgent(agentId);
      const createdAt = Date.now();
      expect(resumed.coordinator_id).not.toBe(home.id);
      const state = await cluster.api(G, "GET", `/api/v1/instances/${String(resumed.instance_id)}/state`);
      expect((state.json.state as JsonObject).notes).toEqual(["t1", "t2", "t3", ...late]);
      // It waited for the stalled upload: the create answered only after the link came back.
      expect(resumedAt).toBeGreaterThan(0);
      expect(createdAt).toBeGreaterThanOrEqual(resumedAt);
      const survivor = cluster.coordinators.find((c) => c.id === resumed.coordinator_id) as PodiumProcess;
      expect(survivor.output()).toContain("waited for a dead coordinator's final upload of the agent");
      console.log(
        `final upload: S3 stalled for ${home.id}, killed; link back after ${resumedAt - killedAt} ms; ${agentId} resumed on ${survivor.id} ${createdAt - killedAt} ms after the kill with all 8 turns`,
      );
      expect((await cluster.api(G, "DELETE", `/api/v1/instances/${String(resumed.instance_id)}`)).status).toBe(200);
    } finally {
      clearTimeout(stall);
      link.resume();
    }
  }, 150_000);
});
