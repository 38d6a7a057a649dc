/**
 * A fenced instance, through a running Podium (`podium dev` in-process) replicating with real Litestream,
 * s3rver and redis-server: when another owner takes the agent's lease, the instance is stopped, writes
 * nothing more, and its clients get a `terminated` that repeats the last seq they got (it is not stored:
 * the agent's history is the new owner's, which may write the next seq).
 */
import { describe, it, expect, beforeAll, afterAll } from "@jest/globals";
import Database from "better-sqlite3";
import path from "node:path";
import type { Redis } from "ioredis";
import { leaseKey } from "../../services/replication/agent-lease.js";
import { closeValkey, createValkeyClient } from "../../services/cluster/valkey-client.js";
import type { JsonObject } from "../../services/shared/json.js";
import { startDevFixture, type DevFixture } from "../helpers/dev-fixture.js";
import { startRedis, type RedisServer } from "../helpers/redis-server.js";
import { startReplicationFixture, type ReplicationFixture } from "./replication-fixture.js";

let s3: ReplicationFixture;
let server: RedisServer;
let redis: Redis;
let podium: DevFixture;

beforeAll(async () => {
  [s3, server] = await Promise.all([startReplicationFixture(), startRedis()]);
  redis = createValkeyClient(server.url);
  podium = await startDevFixture({ coordinator: { replication: { s3: { ...s3.settings, prefix: "replicas/" }, redis: server.url, leaseTtlMs: 1500 } } });
}, 60_000);

afterAll(async () => {
  await podium?.close();
  if (redis) await closeValkey(redis);
  await server?.stop();
  await s3?.cleanup();
});

describe("a fenced instance", () => {
  it("stops, records nothing more, and its clients' `terminated` repeats the last seq", async () => {
    const agentId = "fenced-seq";
    const created = await podium.api("POST", "/api/v1/instances", { deployment_id: "durable-ts:1.0.0@local", agent_id: agentId });
    expect(created.status).toBe(201);
    const instanceId = String(created.json.instance_id);
    const ws = await podium.connect(instanceId);
    try {
      const sent = await podium.api("POST", `/api/v1/instances/${instanceId}/messages`, { content: { text: "before" } });
      expect(sent.status).toBe(202);
      const done = await ws.waitFor((f) => f.messageType === "turn.done" && f.turn === sent.json.turn);
      // Another coordinator takes the agent over.
      await redis.set(leaseKey(agentId), "coord-elsewhere:takeover", "PX", 30_000);
      const terminated = await ws.waitFor((f) => f.messageType === "terminated", 15_000);
      expect(terminated.seq).toBe(done.seq);
      expect((terminated.content as JsonObject).reason).toBe("taken over by coordinator coord-elsewhere");
      const db = new Database(path.join(podium.dataDir, "agents", agentId, "messages.db"), { readonly: true, fileMustExist: true });
      try {
        expect(db.prepare("SELECT max(seq) AS last FROM messages").get()).toEqual({ last: done.seq });
      } finally {
        db.close();
      }
    } finally {
      ws.close();
    }
  }, 60_000);
});
