/**
 * The seed's client contract (004), end to end against a real dev server on port 0 and real agent
 * processes: create -> connect -> process_message -> ordered events -> GET 200 -> DELETE -> GET 404.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { isProcessAlive, startDevFixture, type DevFixture, type WsClient } from "../helpers/dev-fixture.js";
import type { JsonObject } from "../../services/shared/json.js";
import { spawnSync } from "node:child_process";

function pgrep(pattern: string): boolean {
  return spawnSync("pgrep", ["-f", pattern]).status === 0;
}

let podium: DevFixture;
beforeAll(async () => {
  podium = await startDevFixture();
});
afterAll(async () => {
  await podium.close();
});

function turnFrames(ws: WsClient, from: number): JsonObject[] {
  const platform = new Set(["state.delta", "workspace.changed", "turn.done"]);
  return ws.frames.slice(from).filter((f) => typeof f.messageType === "string" && !platform.has(f.messageType));
}

describe.each([
  ["echo-ts", "typescript"],
  ["echo-py", "python"],
])("%s over REST + WebSocket", (name, runtime) => {
  it("creates, streams an echo turn in order, reports alive, stops and reports gone", async () => {
    const created = await podium.api("POST", "/api/v1/instances", { deployment_id: `${name}:1.0.0@local` });
    expect(created.status).toBe(201);
    const instanceId = created.json.instance_id as string;
    expect(instanceId).toMatch(/^inst-/);
    expect(created.json.deployment_id).toBe(`${name}:1.0.0@local`);
    expect(created.json.status).toBe("ready");
    expect(created.json.runtime).toBe(runtime);
    const pid = created.json.pid as number;
    expect(isProcessAlive(pid)).toBe(true);

    const ws = await podium.connect(instanceId);
    const text = "Fix the authentication bug in auth.ts";
    ws.send({ type: "process_message", content: { text, session: "s-1" } });
    await ws.waitFor((f) => f.messageType === "stream_end");
    const frames = turnFrames(ws, 0);
    expect(frames[0]?.messageType).toBe("stream_start");
    expect(frames[frames.length - 1]?.messageType).toBe("stream_end");
    const updates = frames.filter((f) => f.messageType === "stream_update");
    expect(updates.length).toBeGreaterThanOrEqual(1);
    expect(updates.map((f) => (f.content as JsonObject).text).join("")).toBe(text);
    const seqs = ws.frames.map((f) => f.seq as number);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1] as number);
    for (const f of frames) {
      expect(f.agentId).toBe(created.json.agent_id);
      expect(typeof f.timestamp).toBe("string");
      expect(Number.isNaN(Date.parse(f.timestamp as string))).toBe(false);
    }
    // stream_end was emitted by the agent, so the platform adds no `complete` for the turn.
    expect(frames.some((f) => f.messageType === "complete")).toBe(false);

    expect((await podium.api("GET", `/api/v1/instances/${instanceId}`)).status).toBe(200);
    const stopped = await podium.api("DELETE", `/api/v1/instances/${instanceId}`);
    expect(stopped.status).toBe(200);
    expect(stopped.json.status).toBe("terminated");
    await ws.waitFor((f) => f.messageType === "terminated");
    expect((await ws.waitClosed()).code).toBe(1000);
    const gone = await podium.api("GET", `/api/v1/instances/${instanceId}`);
    expect(gone.status).toBe(404);
    expect((gone.json.instance as JsonObject).status).toBe("terminated");
    expect(isProcessAlive(pid)).toBe(false);
  });
});

describe("turns and errors", () => {
  it.each(["faulty-ts", "faulty-py"])("%s: a throwing handler emits error and the instance keeps serving; messages queue in order", async (name) => {
    const created = await podium.api("POST", "/api/v1/instances", { deployment_id: `${name}:1.0.0` });
    expect(created.status).toBe(201);
    const id = created.json.instance_id as string;
    const ws = await podium.connect(id);
    ws.send({ type: "process_message", content: { text: "boom" } });
    ws.send({ type: "process_message", content: { text: "a" } });
    ws.send({ type: "process_message", content: { text: "b" } });
    await ws.waitFor((f) => f.messageType === "stream_update" && (f.content as JsonObject).text === "ok:b");
    await ws.waitFor((f) => f.messageType === "complete" && ws.frames.filter((x) => x.messageType === "complete").length === 2);
    const types = turnFrames(ws, 0).map((f) => `${f.messageType}${f.content && (f.content as JsonObject).text ? ":" + String((f.content as JsonObject).text) : ""}`);
    expect(types).toEqual(["error", "stream_update:ok:a", "complete", "stream_update:ok:b", "complete"]);
    const error = ws.frames.find((f) => f.messageType === "error");
    expect((error?.content as JsonObject).message).toContain("kaboom");
    expect((await podium.api("DELETE", `/api/v1/instances/${id}`)).status).toBe(200);
  });

  it("an agent that cannot start fails creation with a clear error and leaves no process", async () => {
    const created = await podium.api("POST", "/api/v1/instances", { deployment_id: "broken-py:1.0.0@local" });
    expect(created.status).toBe(400);
    expect((created.json.error as JsonObject).code).toBe("failed_precondition");
    expect((created.json.error as JsonObject).message).toContain("this_module_does_not_exist");
  });

  it("replays missed events with after_seq and continues live without gaps or duplicates", async () => {
    const created = await podium.api("POST", "/api/v1/instances", { deployment_id: "echo-ts:1.0.0@local" });
    const id = created.json.instance_id as string;
    const first = await podium.connect(id);
    first.send({ type: "process_message", content: { text: "one two" } });
    const end = await first.waitFor((f) => f.messageType === "stream_end");
    first.close();
    const sent = await podium.api("POST", `/api/v1/instances/${id}/messages`, { type: "process_message", content: { text: "three four" } });
    expect(sent.status).toBe(202);
    await new Promise((r) => setTimeout(r, 300));
    const second = await podium.connect(id, `after_seq=${end.seq as number}`);
    second.send({ type: "process_message", content: { text: "five" } });
    await second.waitFor((f) => f.messageType === "stream_end" && second.frames.filter((x) => x.messageType === "stream_end").length === 2);
    const seqs = second.frames.map((f) => f.seq as number);
    expect(seqs[0]).toBeGreaterThan(end.seq as number);
    expect(new Set(seqs).size).toBe(seqs.length);
    const texts = second.frames
      .filter((f) => f.messageType === "stream_update")
      .map((f) => (f.content as JsonObject).text)
      .join("");
    expect(texts).toBe("three fourfive");
    const messages = await podium.api("GET", `/api/v1/instances/${id}/messages?after_seq=0&limit=1000`);
    const inbound = (messages.json.messages as JsonObject[]).filter((m) => m.direction === "inbound").map((m) => (m.content as JsonObject).text);
    expect(inbound).toEqual(["one two", "three four", "five"]);
    await podium.api("DELETE", `/api/v1/instances/${id}`);
  });

  it("stopping kills the agent's whole process tree", async () => {
    const created = await podium.api("POST", "/api/v1/instances", { deployment_id: "slow-ts:1.0.0@local" });
    const id = created.json.instance_id as string;
    const ws = await podium.connect(id);
    // A unique sleep duration names the grandchild on the host (pids differ inside a sandbox).
    const tag = `299.${process.pid}${Date.now() % 100000}`;
    ws.send({ type: "process_message", content: { text: "spawn", tag } });
    await ws.waitFor((f) => f.messageType === "stream_update");
    expect(pgrep(`sleep ${tag}`)).toBe(true);
    await podium.api("DELETE", `/api/v1/instances/${id}?grace_ms=500`);
    await new Promise((r) => setTimeout(r, 200));
    expect(pgrep(`sleep ${tag}`)).toBe(false);
    expect(isProcessAlive(created.json.pid as number)).toBe(false);
  });

  it("passes environment and secrets to the agent and nothing else of the platform's environment", async () => {
    const created = await podium.api("POST", "/api/v1/instances", {
      deployment_id: "faulty-ts:1.0.0@local",
      environment: { MODE: "test" },
      secrets: { TOKEN: "s3cr3t" },
    });
    expect(created.status).toBe(201);
    expect(JSON.stringify(created.json)).not.toContain("s3cr3t");
    const ws = await podium.connect(created.json.instance_id as string);
    ws.send({ type: "process_message", content: { text: "env" } });
    const update = await ws.waitFor((f) => f.messageType === "stream_update");
    const report = JSON.parse((update.content as JsonObject).text as string) as { ctx: Record<string, string>; processKeys: string[] };
    expect(report.ctx).toEqual({ MODE: "test", TOKEN: "s3cr3t" });
    expect(report.processKeys).not.toContain("PODIUM_API_KEY");
    expect(report.processKeys).not.toContain("JEST_WORKER_ID");
    expect(report.processKeys).toContain("PODIUM_INSTANCE_ID");
    const logs = await podium.api("GET", `/api/v1/instances/${created.json.instance_id as string}/logs?limit=1000`);
    expect(JSON.stringify(logs.json)).not.toContain("s3cr3t");
    await podium.api("DELETE", `/api/v1/instances/${created.json.instance_id as string}`);
  });
});

describe("long histories", () => {
  // Long on purpose: more history than one replay page holds.
  it("replays 30,000 events after_seq=0 in order, then continues live", async () => {
    const created = await podium.api("POST", "/api/v1/instances", { deployment_id: "flood-ts:1.0.0@local" });
    const id = created.json.instance_id as string;
    const sent = await podium.api("POST", `/api/v1/instances/${id}/messages`, { content: { n: 30_000 } });
    expect(sent.status).toBe(202);
    const live = await podium.connect(id, "after_seq=0");
    await live.waitFor((f) => f.messageType === "turn.done", 60_000);
    const historyEnd = live.frames[live.frames.length - 1]?.seq as number;
    live.close();
    const replay = await podium.connect(id, "after_seq=0");
    replay.send({ type: "process_message", content: { n: 2, text: "live" } });
    await replay.waitFor((f) => f.messageType === "turn.done" && (f.seq as number) > historyEnd, 60_000);
    const seqs = replay.frames.map((f) => f.seq as number);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1] as number);
    expect(replay.frames.filter((f) => f.messageType === "stream_update").length).toBe(30_002);
    expect(replay.frames.filter((f) => (f.content as JsonObject | undefined)?.text === "live").length).toBe(2);
    await podium.api("DELETE", `/api/v1/instances/${id}`);
  }, 120_000);
});
