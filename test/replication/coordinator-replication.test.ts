/**
 * Replication wired into a running Podium (`podium dev` in-process: gateway + coordinator) with real
 * Litestream and s3rver: agents are replicated while they run, their status is served over REST and
 * Connect, a stopped agent whose local copy is lost comes back from S3, and point-in-time forks work.
 */
import { describe, it, expect, beforeAll, afterAll } from "@jest/globals";
import fs from "node:fs";
import path from "node:path";
import { startDevFixture, API_KEY, type DevFixture } from "../helpers/dev-fixture.js";
import { startReplicationFixture, type ReplicationFixture } from "./replication-fixture.js";
import type { JsonObject } from "../../services/shared/json.js";

let s3: ReplicationFixture;
let podium: DevFixture;

async function turn(instanceId: string, text: string): Promise<void> {
  const ws = await podium.connect(instanceId);
  try {
    const sent = await podium.api("POST", `/api/v1/instances/${instanceId}/messages`, { content: { text } });
    expect(sent.status).toBe(202);
    await ws.waitFor((f) => f.messageType === "turn.done" && f.turn === sent.json.turn);
  } finally {
    ws.close();
  }
}

async function metrics(): Promise<string> {
  const res = await fetch(`${podium.url}/metrics`, { headers: { authorization: `Bearer ${API_KEY}` } });
  expect(res.status).toBe(200);
  return res.text();
}

async function waitUntil<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

beforeAll(async () => {
  s3 = await startReplicationFixture();
  podium = await startDevFixture({ coordinator: { replication: { s3: { ...s3.settings, prefix: "replicas/" } } } });
}, 60_000);

afterAll(async () => {
  await podium?.close();
  await s3?.cleanup();
});

describe("a coordinator with replication", () => {
  it("replicates a running agent (status over REST), restores it after its local copy is lost, and forks it at a point in time", async () => {
    const agentId = "durable-1";
    const created = await podium.api("POST", "/api/v1/instances", { deployment_id: "durable-ts:1.0.0@local", agent_id: agentId });
    expect(created.status).toBe(201);
    const instanceId = String(created.json.instance_id);
    await turn(instanceId, "first");
    // A point in time is reachable once it is in S3 (the sync window, ~1 s after the write).
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const beforeSecond = new Date();
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await turn(instanceId, "second");

    // Live status: Litestream catches up within about a second of the last write.
    const live = await waitUntil("lag 0", async () => {
      const res = await podium.api("GET", `/api/v1/agents/${agentId}/replication`);
      expect(res.status).toBe(200);
      return res.json.state === "replicating" && res.json.lag_ms === 0 && res.json.position ? res.json : undefined;
    });
    expect(live.generation).toMatch(/^[0-9a-f]{16}$/);
    expect(live.position).toMatch(/^[0-9a-f]{16}\/[0-9a-f]{8}:\d+$/);
    expect(typeof live.last_sync_at).toBe("string");
    expect((live.databases as JsonObject[]).map((d) => d.name).sort()).toEqual(["chronicle.db", "logs.db", "messages.db", "state.db"]);
    expect(live.coordinator_id).toBe("local");
    const liveMetrics = await metrics();
    expect(liveMetrics).toMatch(/^podium_replication_lag_seconds\{coordinator_id="local",agent_id="durable-1"\} [0-9.]+$/m);
    expect(liveMetrics).toMatch(/^podium_replication_agents\{coordinator_id="local",state="replicating"\} 1$/m);

    const stopped = await podium.api("DELETE", `/api/v1/instances/${instanceId}`);
    expect(stopped.status).toBe(200);
    // Released: a final sync, then the status of a stopped agent (lag 0, its last positions).
    const released = await waitUntil("stopped status", async () => {
      const res = await podium.api("GET", `/api/v1/agents/${agentId}/replication`);
      return res.json.state === "stopped" ? res.json : undefined;
    });
    expect(released.lag_ms).toBe(0);
    expect(released.generation).toMatch(/^[0-9a-f]{16}$/);

    // The host loses the agent's directory: the next instance restores it from S3.
    const agentDir = path.join(podium.dataDir, "agents", agentId);
    // Its disk volume is unmounted just after the final sync (docs/security.md): until then rm sees EBUSY.
    await waitUntil("agent dir removed", async () => {
      try {
        fs.rmSync(agentDir, { recursive: true, force: true });
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EBUSY") throw err;
        return undefined;
      }
    });
    const again = await podium.api("POST", "/api/v1/instances", { deployment_id: "durable-ts:1.0.0@local", agent_id: agentId });
    expect(again.status).toBe(201);
    const againId = String(again.json.instance_id);
    const state = await podium.api("GET", `/api/v1/instances/${againId}/state`);
    expect(state.json.state).toEqual({ notes: ["first", "second"] });
    const messages = await podium.api("GET", `/api/v1/instances/${againId}/messages?limit=1000`);
    const texts = (messages.json.messages as JsonObject[]).filter((m) => m.message_type === "complete").map((m) => (m.content as JsonObject).text);
    expect(texts).toEqual(["noted first", "noted second"]);
    const file = await podium.api("GET", `/api/v1/instances/${againId}/files/notes/2.txt`);
    expect(file.status).toBe(200);
    expect(file.json.content).toBe("second\n");
    const history = await podium.api("GET", `/api/v1/instances/${againId}/files/notes/1.txt/history`);
    expect((history.json.iterations as JsonObject[]).length).toBeGreaterThanOrEqual(1);
    await turn(againId, "third");
    expect((await podium.api("DELETE", `/api/v1/instances/${againId}`)).status).toBe(200);

    // Point in time: as it was before the second turn, into a new agent; the source is untouched.
    const fork = await podium.api("POST", `/api/v1/agents/${agentId}/fork`, { timestamp: beforeSecond.toISOString(), agent_id: "durable-1-fork" });
    expect(fork.json.error ?? null).toBeNull();
    expect(fork.status).toBe(201);
    expect(fork.json).toMatchObject({ agent_id: "durable-1-fork", source_agent_id: agentId, timestamp: beforeSecond.toISOString(), coordinator_id: "local" });
    expect(fork.json.restore_ms).toBeGreaterThan(0);
    const forked = await podium.api("POST", "/api/v1/instances", { deployment_id: "durable-ts:1.0.0@local", agent_id: "durable-1-fork" });
    expect(forked.status).toBe(201);
    const forkState = await podium.api("GET", `/api/v1/instances/${String(forked.json.instance_id)}/state`);
    expect(forkState.json.state).toEqual({ notes: ["first"] });
    const forkFiles = await podium.api("GET", `/api/v1/instances/${String(forked.json.instance_id)}/files/notes/2.txt`);
    expect(forkFiles.status).toBe(404);
    await podium.api("DELETE", `/api/v1/instances/${String(forked.json.instance_id)}`);

    // Latest (no timestamp) into a generated id.
    const latest = await podium.api("POST", `/api/v1/agents/${agentId}/fork`, {});
    expect(latest.status).toBe(201);
    expect(String(latest.json.agent_id)).toMatch(/^agent-/);
    expect(latest.json.timestamp).toBeNull();

    const counters = await metrics();
    expect(counters).toMatch(/^podium_replication_restores_total\{coordinator_id="local",kind="clean"\} 1$/m);
    expect(counters).toMatch(/^podium_replication_restores_total\{coordinator_id="local",kind="reconciled"\} 0$/m);
    expect(counters).toMatch(/^podium_replication_forks_total\{coordinator_id="local"\} 2$/m);
    expect(counters).toMatch(/^podium_replication_releases_total\{coordinator_id="local",synced="true"\} 3$/m);
    expect(counters).toMatch(/^podium_replication_fenced_total\{coordinator_id="local"\} 0$/m);
  }, 90_000);

  it("a hibernating agent is synced to S3 and released, and its wake takes it back and replicates again", async () => {
    const agentId = "sleepy-replicated";
    const created = await podium.api("POST", "/api/v1/instances", { deployment_id: "sleepy-ts:1.0.0@local", agent_id: agentId });
    expect(created.status).toBe(201);
    const instanceId = String(created.json.instance_id);
    await turn(instanceId, "one");
    // Hibernated after 400 ms idle: its final sync done, released like a stopped agent (lag 0).
    const released = await waitUntil("released on hibernation", async () => {
      const res = await podium.api("GET", `/api/v1/agents/${agentId}/replication`);
      return res.json.state === "stopped" ? res.json : undefined;
    });
    expect(released.lag_ms).toBe(0);
    expect((await podium.api("GET", `/api/v1/instances/${instanceId}`)).json.status).toBe("hibernated");
    await turn(instanceId, "two");
    // The wake took the lease and replicated again (a new generation), until it hibernated again.
    const again = await waitUntil("replicated again and released", async () => {
      const res = await podium.api("GET", `/api/v1/agents/${agentId}/replication`);
      return res.json.state === "stopped" && res.json.generation !== released.generation ? res.json : undefined;
    });
    expect(again.lag_ms).toBe(0);
    const state = await podium.api("GET", `/api/v1/instances/${instanceId}/state`);
    expect(state.json.state).toEqual({ turns: ["one", "two"], starts: 2, hibernations: 2 });
    expect((await podium.api("DELETE", `/api/v1/instances/${instanceId}`)).status).toBe(200);
  }, 60_000);

  it("refuses bad fork and status requests with clear errors", async () => {
    const unknown = await podium.api("GET", "/api/v1/agents/never-existed/replication");
    expect(unknown.status).toBe(404);
    expect((unknown.json.error as JsonObject).message).toMatch(/no replica/);
    const noSource = await podium.api("POST", "/api/v1/agents/never-existed/fork", {});
    expect(noSource.status).toBe(404);
    const badTime = await podium.api("POST", "/api/v1/agents/durable-1/fork", { timestamp: "yesterday" });
    expect(badTime.status).toBe(400);
    expect((badTime.json.error as JsonObject).message).toMatch(/RFC 3339/);
    const future = await podium.api("POST", "/api/v1/agents/durable-1/fork", { timestamp: new Date(Date.now() + 3600_000).toISOString() });
    expect(future.status).toBe(400);
    const taken = await podium.api("POST", "/api/v1/agents/durable-1/fork", { agent_id: "durable-1-fork" });
    expect(taken.status).toBe(409);
    const badId = await podium.api("POST", "/api/v1/agents/durable-1/fork", { agent_id: "../escape" });
    expect(badId.status).toBe(400);
    const reserved = await podium.api("POST", "/api/v1/instances", { deployment_id: "durable-ts:1.0.0@local", agent_id: "x.stale-123" });
    expect(reserved.status).toBe(400);
    const wrongType = await podium.api("POST", "/api/v1/agents/durable-1/fork", { timestamp: 12 });
    expect(wrongType.status).toBe(400);
  }, 60_000);
});
