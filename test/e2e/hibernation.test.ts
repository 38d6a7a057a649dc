/**
 * Hibernation against a real `podium dev` (sandboxed agents): an instance idle for its deployment's
 * hibernate_after_ms loses its process but not its identity, state, workspace or subscribers; a message
 * wakes it with the same instance id, and the history continues without a gap. TypeScript and Python.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { API_KEY, isProcessAlive, startDevFixture, type DevFixture, removeDataDir } from "../helpers/dev-fixture.js";
import type { JsonObject } from "../../services/shared/json.js";

let podium: DevFixture;

beforeAll(async () => {
  podium = await startDevFixture();
}, 60_000);

afterAll(async () => {
  await podium?.close();
});

/** Mount ids and points under an agent's directory (its disk volume, when this host enforces quotas: root). */
function mountsOf(agentId: string): string[] {
  const dir = path.join(fs.realpathSync(podium.dataDir), "agents", agentId);
  return fs
    .readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((line) => line.split(" "))
    .filter(([, , , , mountPoint = ""]) => mountPoint === dir || mountPoint.startsWith(dir + "/"))
    .map(([id, , , , mountPoint]) => `${id} ${mountPoint}`);
}

async function allMessages(id: string): Promise<JsonObject[]> {
  const page = await podium.api("GET", `/api/v1/instances/${id}/messages?limit=1000`);
  return page.json.messages as JsonObject[];
}

describe.each(["sleepy-ts", "sleepy-py"])("hibernation (%s)", (deployment) => {
  it("hibernates when idle, keeps everything, and wakes on a message with the same instance id", async () => {
    const created = await podium.api("POST", "/api/v1/instances", { deployment_id: `${deployment}:1.0.0@local`, environment: { GREETING: "hello" } });
    expect(created.status).toBe(201);
    const id = String(created.json.instance_id);
    const agentId = String(created.json.agent_id);
    const pid = Number(created.json.pid);
    const ws = await podium.connect(id);
    const mounted = mountsOf(agentId); // none where quotas are not enforced (not root, no loop devices)

    const first = await podium.api("POST", `/api/v1/instances/${id}/messages`, { content: { text: "one" } });
    await ws.waitFor((f) => f.messageType === "turn.done" && f.turn === first.json.turn, 20_000);
    // Idle for hibernate_after_ms (400 ms): the process ends, the instance and this socket stay.
    const slept = await ws.waitFor((f) => f.messageType === "hibernated", 20_000);
    expect(slept.content).toMatchObject({ idle_ms: expect.any(Number) });
    const asleep = await podium.api("GET", `/api/v1/instances/${id}`);
    expect(asleep.status).toBe(200);
    expect(asleep.json).toMatchObject({ instance_id: id, status: "hibernated", pid: null, hibernated_at: expect.any(String) });
    for (let i = 0; i < 50 && isProcessAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));
    expect(isProcessAlive(pid)).toBe(false);

    // Readable while asleep: its state (with what onHibernate wrote) and its files.
    const state = await podium.api("GET", `/api/v1/instances/${id}/state`);
    expect(state.json.state).toEqual({ turns: ["one"], starts: 1, hibernations: 1 });
    const file = await podium.api("GET", `/api/v1/instances/${id}/files/turn-1.txt`);
    expect(file.json.content).toBe("one\n");
    const listed = await podium.api("GET", "/api/v1/instances");
    expect((listed.json.instances as JsonObject[]).find((i) => i.instance_id === id)?.status).toBe("hibernated");
    const metrics = await (await fetch(`${podium.url}/metrics`, { headers: { authorization: `Bearer ${API_KEY}` } })).text();
    expect(Number(/^podium_instances_hibernated\{[^}]*\} (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
    expect(Number(/^podium_hibernations_total\{[^}]*\} (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);

    // A message wakes it: same instance, `woke` first, then the turn, from the persisted state.
    const second = await podium.api("POST", `/api/v1/instances/${id}/messages`, { content: { text: "two" } });
    expect(second.status).toBe(202);
    const done = await ws.waitFor((f) => f.messageType === "turn.done" && f.turn === second.json.turn, 20_000);
    expect(done.content).toEqual({ turn: second.json.turn, ok: true });
    const woke = ws.frames.findIndex((f) => f.messageType === "woke");
    const firstOfTurn = ws.frames.findIndex((f) => f.turn === second.json.turn);
    expect(woke).toBeGreaterThan(-1);
    expect(woke).toBeLessThan(firstOfTurn);
    expect(ws.frames.find((f) => f.messageType === "complete" && f.turn === second.json.turn)?.content).toEqual({ text: "got two (2 turns, 2 starts) hello" });
    const awake = await podium.api("GET", `/api/v1/instances/${id}`);
    expect(awake.json).toMatchObject({ instance_id: id, status: "ready" });
    // The wake took the same mounts (their ids are the kernel's): the disk stayed mounted while it slept.
    expect(mountsOf(agentId)).toEqual(mounted);
    expect(awake.json.hibernated_at).toBeUndefined();

    // One history, no gap: every seq from 1 to the last, the inbound messages included.
    const messages = await allMessages(id);
    expect(messages.map((m) => Number(m.seq))).toEqual(messages.map((_, i) => i + 1));
    const types = messages.filter((m) => m.direction === "outbound" && m.turn === 0).map((m) => m.message_type);
    expect(types).toContain("hibernated");
    expect(types).toContain("woke");

    // Asleep again, then stopped: the socket sees `terminated` and closes; the instance is gone.
    await ws.waitFor((f) => f.messageType === "hibernated" && ws.frames.indexOf(f) > woke, 20_000);
    const stopped = await podium.api("DELETE", `/api/v1/instances/${id}`);
    expect(stopped.status).toBe(200);
    expect(stopped.json.status).toBe("terminated");
    await ws.waitFor((f) => f.messageType === "terminated", 10_000);
    await ws.waitClosed();
    expect((await podium.api("GET", `/api/v1/instances/${id}`)).status).toBe(404);
    // Ended: the disk it kept mounted goes too.
    for (let i = 0; i < 400 && mountsOf(agentId).length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(mountsOf(agentId)).toEqual([]);
  }, 90_000);
});

describe("hibernation: messages sent while the agent falls asleep or wakes", () => {
  it("loses none and runs them in order", async () => {
    const created = await podium.api("POST", "/api/v1/instances", { deployment_id: "sleepy-ts:1.0.0@local" });
    const id = String(created.json.instance_id);
    const ws = await podium.connect(id);
    await ws.waitFor((f) => f.messageType === "hibernated", 20_000);
    // A burst while asleep: the first wakes it, the rest wait for the same wake.
    const sent = await Promise.all(["a", "b", "c", "d"].map((text) => podium.api("POST", `/api/v1/instances/${id}/messages`, { content: { text } })));
    expect(sent.map((s) => s.status)).toEqual([202, 202, 202, 202]);
    const turns = sent.map((s) => Number(s.json.turn));
    for (const turn of turns) await ws.waitFor((f) => f.messageType === "turn.done" && f.turn === turn, 20_000);
    const state = await podium.api("GET", `/api/v1/instances/${id}/state`);
    expect((state.json.state as JsonObject).turns).toEqual([...sent].sort((x, y) => Number(x.json.turn) - Number(y.json.turn)).map((s) => ["a", "b", "c", "d"][sent.indexOf(s)]));
    expect(ws.frames.filter((f) => f.messageType === "woke")).toHaveLength(1);
    await podium.api("DELETE", `/api/v1/instances/${id}`);
    ws.close();
  }, 60_000);
});

describe("hibernation across a restart of the coordinator", () => {
  it("instances come back hibernated with the same ids; one is woken by a message, one stopped while asleep", async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-hibernation-"));
    const start = () => startDevFixture({ dataDir });
    try {
      const first = await start();
      const ids: string[] = [];
      for (let i = 0; i < 2; i++) ids.push(String((await first.api("POST", "/api/v1/instances", { deployment_id: "sleepy-ts:1.0.0@local" })).json.instance_id));
      const [woken, stopped] = ids as [string, string];
      const sent = await first.api("POST", `/api/v1/instances/${woken}/messages`, { content: { text: "before" } });
      expect(sent.status).toBe(202);
      for (const id of ids) {
        for (let i = 0; i < 100 && (await first.api("GET", `/api/v1/instances/${id}`)).json.status !== "hibernated"; i++) await new Promise((r) => setTimeout(r, 100));
      }
      await first.close();

      const second = await start();
      try {
        for (const id of ids) expect((await second.api("GET", `/api/v1/instances/${id}`)).json).toMatchObject({ instance_id: id, status: "hibernated" });
        const ws = await second.connect(woken);
        const after = await second.api("POST", `/api/v1/instances/${woken}/messages`, { content: { text: "after" } });
        expect(after.status).toBe(202);
        const done = await ws.waitFor((f) => f.messageType === "complete" && f.turn === after.json.turn, 20_000);
        // Its state went on from where it was (a start per process: it may have slept before "before" too).
        expect((done.content as JsonObject).text).toMatch(/^got after \(2 turns, [23] starts\)$/);
        ws.close();
        const gone = await second.api("DELETE", `/api/v1/instances/${stopped}`);
        expect(gone).toMatchObject({ status: 200, json: { status: "terminated" } });
      } finally {
        await second.close();
      }
    } finally {
      removeDataDir(dataDir);
    }
  }, 90_000);
});
