/**
 * Schedules against a real `podium dev`: ctx.schedule with a delay, a date and a cron (TypeScript and
 * Python), firing as normal turns that wake a hibernated instance, listed over REST, cancelled, declared
 * in podium.json, and a schedule due while the coordinator was down firing once when it restarts (the
 * instance comes back hibernated, same id), with its original due_at.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { startDevFixture, type DevFixture, type WsClient, removeDataDir } from "../helpers/dev-fixture.js";
import type { JsonObject } from "../../services/shared/json.js";

let podium: DevFixture;

beforeAll(async () => {
  podium = await startDevFixture();
}, 60_000);

afterAll(async () => {
  await podium?.close();
});

/** Sends a command and returns the `result` of the turn's `complete`. */
async function command(ws: WsClient, id: string, content: JsonObject): Promise<unknown> {
  const sent = await podium.api("POST", `/api/v1/instances/${id}/messages`, { content });
  expect(sent.status).toBe(202);
  const done = await ws.waitFor((f) => f.messageType === "complete" && f.turn === sent.json.turn, 20_000);
  return (done.content as JsonObject).result;
}

async function firedTexts(id: string): Promise<JsonObject[]> {
  const state = await podium.api("GET", `/api/v1/instances/${id}/state`);
  return (state.json.state as { fired: JsonObject[] }).fired;
}

describe.each(["timer-ts", "timer-py"])("schedules (%s)", (deployment) => {
  it("a delay, a date and a cron fire as turns with {scheduled: {id, due_at}}, waking the hibernated instance", async () => {
    const created = await podium.api("POST", "/api/v1/instances", { deployment_id: `${deployment}:1.0.0@local` });
    const id = String(created.json.instance_id);
    const ws = await podium.connect(id);
    const delayed = String(await command(ws, id, { text: "after", ms: 1500 }));
    const at = new Date(Date.now() + 2500).toISOString();
    const dated = String(await command(ws, id, { text: "at", at }));
    const ticking = String(await command(ws, id, { text: "cron", cron: "*/2 * * * * *" }));
    expect([delayed, dated, ticking].every((s) => s.startsWith("sch-"))).toBe(true);

    const listed = await podium.api("GET", `/api/v1/instances/${id}/schedules`);
    expect(listed.status).toBe(200);
    const byId = new Map((listed.json.schedules as JsonObject[]).map((s) => [s.id, s]));
    expect(byId.get(delayed)).toMatchObject({ when: { delay_ms: 1500 }, message: { text: "delayed" }, source: "agent" });
    expect(byId.get(dated)).toMatchObject({ when: { at }, due_at: at });
    expect(byId.get(ticking)).toMatchObject({ when: { cron: "*/2 * * * * *" } });

    // The instance hibernates (600 ms idle) between runs; each due schedule wakes it.
    await ws.waitFor((f) => f.messageType === "hibernated", 20_000);
    const fire = (schedule: string) => ws.waitFor((f) => f.messageType === "schedule.fired" && (f.content as JsonObject).id === schedule, 20_000);
    const [firedDelay, firedDate] = await Promise.all([fire(delayed), fire(dated)]);
    expect((firedDate.content as JsonObject).due_at).toBe(at);
    await ws.waitFor((f) => f.messageType === "turn.done" && f.turn === (firedDate.content as JsonObject).turn, 20_000);
    await ws.waitFor((f) => f.messageType === "woke", 20_000); // a due schedule woke it (the cron's, if the others came first)
    const fired = await firedTexts(id);
    expect(fired.find((f) => f.id === delayed)).toMatchObject({ text: "delayed", due_at: expect.any(String) });
    expect(fired.find((f) => f.id === dated)).toEqual({ text: "dated", id: dated, due_at: at });
    expect((firedDelay.content as JsonObject).turn).toEqual(expect.any(Number));

    // The cron keeps firing until cancelled; one-offs are gone once fired.
    await ws.waitFor((f) => f.messageType === "schedule.fired" && (f.content as JsonObject).id === ticking, 20_000);
    expect(await command(ws, id, { text: "cancel", id: ticking })).toBe(true);
    expect(await command(ws, id, { text: "cancel", id: ticking })).toBe(false);
    const left = (await command(ws, id, { text: "list" })) as JsonObject[];
    expect(left.filter((s) => s.source === "agent")).toEqual([]);
    // A bad cron is refused with the reason, in the agent.
    expect(await command(ws, id, { text: "cron", cron: "every tuesday" })).toEqual({ error: expect.stringContaining("not a valid cron expression") });
    await podium.api("DELETE", `/api/v1/instances/${id}`);
    ws.close();
  }, 90_000);
});

describe("schedules: podium.json and recovery", () => {
  it("lists the deployment's declared crons beside the agent's own", async () => {
    const created = await podium.api("POST", "/api/v1/instances", { deployment_id: "timer-ts:1.0.0@local" });
    const listed = await podium.api("GET", `/api/v1/instances/${String(created.json.instance_id)}/schedules`);
    expect(listed.json.schedules).toEqual([
      {
        id: "deployment:new-year",
        when: { cron: "0 0 1 1 *" },
        message: { text: "happy new year" },
        due_at: `${new Date().getUTCFullYear() + 1}-01-01T00:00:00.000Z`,
        created_at: expect.any(String),
        source: "deployment",
      },
    ]);
    await podium.api("DELETE", `/api/v1/instances/${String(created.json.instance_id)}`);
  }, 60_000);

  it("a schedule due while the coordinator was down fires once on its restart, with its original due_at, waking the restored instance", async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-schedules-"));
    const start = () => startDevFixture({ dataDir });
    try {
      const first = await start();
      const created = await first.api("POST", "/api/v1/instances", { deployment_id: "timer-ts:1.0.0@local", agent_id: "timer-recovery" });
      const id = String(created.json.instance_id);
      const ws = await first.connect(id); // before the message: /connect streams from the current seq on
      const sent = await first.api("POST", `/api/v1/instances/${id}/messages`, { content: { text: "after", ms: 1500 } });
      await ws.waitFor((f) => f.messageType === "turn.done" && f.turn === sent.json.turn, 20_000);
      const [schedule] = (await first.api("GET", `/api/v1/instances/${id}/schedules`)).json.schedules as JsonObject[];
      ws.close();
      await first.close(); // down before it is due
      await new Promise((r) => setTimeout(r, 2000));

      const second = await start();
      try {
        // The restarted coordinator has the instance back (same id, hibernated); the due schedule wakes it.
        let fired: JsonObject[] = [];
        for (let i = 0; i < 200 && fired.length === 0; i++) {
          await new Promise((r) => setTimeout(r, 100));
          fired = ((await second.api("GET", `/api/v1/instances/${id}/state`)).json.state as { fired: JsonObject[] }).fired;
        }
        expect(fired).toEqual([{ text: "delayed", id: schedule?.id, due_at: schedule?.due_at }]);
        expect((await second.api("GET", `/api/v1/instances/${id}/schedules`)).json.schedules).toHaveLength(1); // the declared cron only
        // Resuming the agent by its id (once it hibernated again) answers with that same instance.
        for (let i = 0; i < 200 && (await second.api("GET", `/api/v1/instances/${id}`)).json.status !== "hibernated"; i++) await new Promise((r) => setTimeout(r, 100));
        const resumed = await second.api("POST", "/api/v1/instances", { deployment_id: "timer-ts:1.0.0@local", agent_id: "timer-recovery" });
        expect(resumed.status).toBe(201);
        expect(resumed.json.instance_id).toBe(id);
      } finally {
        await second.close();
      }
    } finally {
      removeDataDir(dataDir);
    }
  }, 90_000);
});
