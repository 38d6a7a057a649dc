/**
 * The agent runtime end to end, for both languages: durable agents (resume by agent_id), state
 * deltas and the state API, crash detection, isolation between agents, and per-instance limits.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { startDevFixture, type DevFixture } from "../helpers/dev-fixture.js";
import type { JsonObject } from "../../services/shared/json.js";

let podium: DevFixture;
beforeAll(async () => {
  podium = await startDevFixture({ coordinator: { limits: { maxQueuedMessages: 3, maxTurnMs: 1500, turnKillGraceMs: 300, maxMessageBytes: 64 * 1024 } } });
});
afterAll(async () => {
  await podium.close();
});

async function create(deployment: string, extra: JsonObject = {}): Promise<JsonObject> {
  const res = await podium.api("POST", "/api/v1/instances", { deployment_id: `${deployment}:1.0.0@local`, ...extra });
  if (res.status !== 201) throw new Error(`create ${deployment}: ${res.status} ${JSON.stringify(res.json)}`);
  return res.json;
}

describe.each([
  ["ts", "echo-ts", "snoop-ts"],
  ["py", "echo-py", "snoop-py"],
])("%s runtime", (lang, echo, snoop) => {
  it("resumes an agent by agent_id with its state and message history", async () => {
    const agentId = `durable-${lang}-${Date.now()}`;
    const first = await create(echo, { agent_id: agentId });
    expect(first.agent_id).toBe(agentId);
    const ws = await podium.connect(first.instance_id as string);
    ws.send({ type: "process_message", content: { text: "one" } });
    ws.send({ type: "process_message", content: { text: "two" } });
    await ws.waitFor((f) => f.messageType === "state.delta" && (f.content as JsonObject).version === 3);
    const state = await podium.api("GET", `/api/v1/instances/${first.instance_id as string}/state`);
    expect(state.json).toEqual({ version: 3, state: { turns: 2 } });
    const since = await podium.api("GET", `/api/v1/instances/${first.instance_id as string}/state?since=1`);
    expect((since.json.patches as JsonObject[]).map((p) => p.version)).toEqual([2, 3]);
    const all = await podium.api("GET", `/api/v1/instances/${first.instance_id as string}/state?since=0`);
    expect((all.json.patches as JsonObject[]).map((p) => p.version)).toEqual([1, 2, 3]); // 0: from the first
    expect((await podium.api("DELETE", `/api/v1/instances/${first.instance_id as string}`)).status).toBe(200);

    const again = await podium.api("POST", "/api/v1/instances", { deployment_id: `${echo}:1.0.0`, agent_id: agentId });
    expect(again.status).toBe(201);
    const second = again.json.instance_id as string;
    expect(second).not.toBe(first.instance_id);
    expect((await podium.api("GET", `/api/v1/instances/${second}/state`)).json).toEqual({ version: 3, state: { turns: 2 } });
    const ws2 = await podium.connect(second);
    ws2.send({ type: "process_message", content: { text: "three" } });
    await ws2.waitFor((f) => f.messageType === "state.delta");
    expect((await podium.api("GET", `/api/v1/instances/${second}/state`)).json).toEqual({ version: 4, state: { turns: 3 } });
    const history = await podium.api("GET", `/api/v1/instances/${second}/messages?limit=1000`);
    const inbound = (history.json.messages as JsonObject[]).filter((m) => m.direction === "inbound").map((m) => (m.content as JsonObject).text);
    expect(inbound).toEqual(["one", "two", "three"]);
    const conflict = await podium.api("POST", "/api/v1/instances", { deployment_id: `${echo}:1.0.0`, agent_id: agentId });
    expect(conflict.status).toBe(409);
    await podium.api("DELETE", `/api/v1/instances/${second}`);
  });

  it("reports a killed agent as terminated within a second and loses nothing acknowledged", async () => {
    const agentId = `crashy-${lang}-${Date.now()}`;
    const created = await create(snoop, { agent_id: agentId });
    const id = created.instance_id as string;
    const ws = await podium.connect(id);
    for (let i = 0; i < 4; i++) ws.send({ type: "process_message", content: { write: `f${i}.txt`, content: String(i) } });
    await ws.waitFor((f) => f.messageType === "stream_update" && String((f.content as JsonObject).text).endsWith("f2.txt"));
    const received = ws.frames.filter((f) => typeof f.seq === "number").map((f) => f.seq as number);
    expect(ws.frames.filter((f) => f.type === "error")).toEqual([]);
    const killedAt = Date.now();
    process.kill(created.pid as number, "SIGKILL");
    const terminated = await ws.waitFor((f) => f.messageType === "terminated", 5000);
    expect(Date.now() - killedAt).toBeLessThan(1000);
    expect((terminated.content as JsonObject).reason).toBe("crashed");
    expect((terminated.content as JsonObject).signal).toBe("SIGKILL");
    const gone = await podium.api("GET", `/api/v1/instances/${id}`);
    expect(gone.status).toBe(404);
    expect((gone.json.instance as JsonObject).status).toBe("failed");

    const resumed = await create(snoop, { agent_id: agentId });
    const history = await podium.api("GET", `/api/v1/instances/${resumed.instance_id as string}/messages?limit=1000`);
    const stored = new Set((history.json.messages as JsonObject[]).map((m) => m.seq as number));
    expect(received.filter((seq) => !stored.has(seq))).toEqual([]);
    // Every acknowledged message ended with one turn.done: the ones the crash stopped with an error before it.
    const rows = history.json.messages as JsonObject[];
    for (const message of rows.filter((m) => m.direction === "inbound")) {
      const ends = rows.filter((m) => m.message_type === "turn.done" && m.turn === message.seq);
      expect({ seq: message.seq, ends: ends.length }).toEqual({ seq: message.seq, ends: 1 });
      if ((ends[0]?.content as JsonObject).ok === false) expect(rows.some((m) => m.message_type === "error" && m.turn === message.seq)).toBe(true);
    }
    const state = await podium.api("GET", `/api/v1/instances/${resumed.instance_id as string}/state`);
    expect((state.json.state as JsonObject).writes).toBeGreaterThanOrEqual(3);
    await podium.api("DELETE", `/api/v1/instances/${resumed.instance_id as string}`);
  });

  it("keeps agents out of each other's workspaces and out of the platform's data", async () => {
    const a = await create(snoop);
    const b = await create(snoop);
    const wsA = await podium.connect(a.instance_id as string);
    wsA.send({ type: "process_message", content: { write: "secret.txt", content: "top secret" } });
    const wrote = await wsA.waitFor((f) => f.messageType === "stream_update");
    const secretPath = String((wrote.content as JsonObject).text).slice("wrote ".length);
    wsA.send({ type: "process_message", content: { read: secretPath } });
    await wsA.waitFor((f) => (f.content as JsonObject | undefined)?.text === "read:top secret");

    const wsB = await podium.connect(b.instance_id as string);
    for (const target of [secretPath, `${podium.dataDir}/registry`, "/work", "/root"]) {
      const before = wsB.frames.length;
      wsB.send({ type: "process_message", content: { read: target } });
      const answer = await wsB.waitFor((f) => f.messageType === "stream_update" && wsB.frames.indexOf(f) >= before);
      expect(String((answer.content as JsonObject).text)).toMatch(/^denied:/);
    }
    await podium.api("DELETE", `/api/v1/instances/${a.instance_id as string}`);
    await podium.api("DELETE", `/api/v1/instances/${b.instance_id as string}`);
  });

  it("enforces message size, queue length and turn duration limits", async () => {
    const created = await create(snoop);
    const id = created.instance_id as string;
    const big = await podium.api("POST", `/api/v1/instances/${id}/messages`, { content: { read: "x".repeat(70 * 1024) } });
    expect(big.status).toBe(400);
    expect((big.json.error as JsonObject).message as string).toContain("limit");
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await podium.api("POST", `/api/v1/instances/${id}/messages`, { content: { hang: true } })).status);
    expect(statuses).toEqual([202, 202, 202, 202, 429]);
    expect((await podium.api("GET", `/api/v1/instances/${id}`)).json.status).toBe("busy");
    const ws = await podium.connect(id, "after_seq=0");
    const terminated = await ws.waitFor((f) => f.messageType === "terminated", 10_000);
    expect((terminated.content as JsonObject).reason).toBe("turn exceeded the maximum duration of 1500 ms");
    const error = ws.frames.find((f) => f.messageType === "error");
    expect((error?.content as JsonObject).message).toContain("maximum duration");
    expect((await podium.api("GET", `/api/v1/instances/${id}`)).status).toBe(404);
  });
});

describe("per-deployment limits from podium.json", () => {
  it("caps memory: a small allocation works, a large one fails in the agent and the instance keeps serving", async () => {
    const created = await create("hog-py");
    const ws = await podium.connect(created.instance_id as string);
    ws.send({ type: "process_message", content: { mb: 16 } });
    await ws.waitFor((f) => (f.content as JsonObject | undefined)?.text === "allocated 16");
    ws.send({ type: "process_message", content: { mb: 512 } });
    const error = await ws.waitFor((f) => f.messageType === "error");
    expect(String((error.content as JsonObject).message)).toMatch(/MemoryError|memory/i);
    ws.send({ type: "process_message", content: { mb: 8 } });
    await ws.waitFor((f) => (f.content as JsonObject | undefined)?.text === "allocated 8");
    await podium.api("DELETE", `/api/v1/instances/${created.instance_id as string}`);
  });
});

describe("agents", () => {
  it("describes a durable agent with and without a live instance, and 404s unknown ones", async () => {
    const created = await create("echo-ts");
    const agentId = created.agent_id as string;
    const live = await podium.api("GET", `/api/v1/agents/${agentId}`);
    expect(live.json).toMatchObject({ agent_id: agentId, instance_id: created.instance_id, state_version: 1 });
    await podium.api("DELETE", `/api/v1/instances/${created.instance_id as string}`);
    const stopped = await podium.api("GET", `/api/v1/agents/${agentId}`);
    expect(stopped.json).toMatchObject({ agent_id: agentId, instance_id: null, state_version: 1 });
    expect((await podium.api("GET", "/api/v1/agents/agent-unknown")).status).toBe(404);
  });
});
