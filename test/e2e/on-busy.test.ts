/**
 * Double-texting against a real `podium dev`: a second message sent while a turn runs, under each
 * on_busy policy (the deployment's podium.json default, or multitask_strategy per message), over REST
 * and the /connect WebSocket. docs/runtime.md#when-the-agent-is-busy.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { startDevFixture, type DevFixture, type WsClient } from "../helpers/dev-fixture.js";
import type { JsonObject } from "../../services/shared/json.js";

let podium: DevFixture;

beforeAll(async () => {
  podium = await startDevFixture();
}, 60_000);

afterAll(async () => {
  await podium?.close();
});

async function create(deployment: string): Promise<{ id: string; ws: WsClient }> {
  const created = await podium.api("POST", "/api/v1/instances", { deployment_id: `${deployment}:1.0.0@local` });
  expect(created.status).toBe(201);
  const id = String(created.json.instance_id);
  return { id, ws: await podium.connect(id) };
}

const send = (id: string, body: JsonObject) => podium.api("POST", `/api/v1/instances/${id}/messages`, body);

/** The events of one turn, in order, up to its turn.done. */
async function turnEvents(ws: WsClient, turn: number): Promise<JsonObject[]> {
  await ws.waitFor((f) => f.messageType === "turn.done" && f.turn === turn, 30_000);
  return ws.frames.filter((f) => f.turn === turn);
}

const types = (events: JsonObject[]) => events.map((e) => String(e.messageType));

describe("on_busy: a message sent while the agent is busy", () => {
  it("enqueue (the default): it waits its turn, and both run in order", async () => {
    const { id, ws } = await create("interrupt-ts");
    const a = await send(id, { content: { text: "a", n: 20, delay: 20 }, multitask_strategy: "enqueue" });
    const b = await send(id, { content: { text: "b" }, multitask_strategy: "enqueue" });
    expect(b.status).toBe(202);
    expect(b.json).toEqual({ seq: expect.any(Number), turn: expect.any(Number), queue_position: 1 });
    const aEvents = await turnEvents(ws, Number(a.json.turn));
    expect(aEvents.at(-1)?.content).toEqual({ turn: a.json.turn, ok: true });
    expect((await turnEvents(ws, Number(b.json.turn))).at(-1)?.content).toEqual({ turn: b.json.turn, ok: true });
    const state = await podium.api("GET", `/api/v1/instances/${id}/state`);
    expect(state.json.state).toEqual({ finished: ["a", "b"], cancelled: [] });
    ws.close();
  }, 60_000);

  it("reject: the second message is refused with 409 and nothing of it is recorded or run", async () => {
    const { id, ws } = await create("slow-ts");
    const a = await send(id, { content: { text: "a", n: 20, delay: 20 } });
    const b = await send(id, { type: "process_message", content: { text: "b" }, multitask_strategy: "reject" });
    expect(b.status).toBe(409);
    expect(b.json.error).toMatchObject({ code: "aborted", message: expect.stringContaining(`busy with turn ${String(a.json.turn)}`) });
    // Over /connect the refusal is an error frame to that client.
    ws.send({ type: "process_message", content: { text: "c" }, multitask_strategy: "reject" });
    expect(await ws.waitFor((f) => f.type === "error")).toMatchObject({ error: { code: "aborted" } });
    await turnEvents(ws, Number(a.json.turn));
    const log = await podium.api("GET", `/api/v1/instances/${id}/messages?limit=1000`);
    const inbound = (log.json.messages as JsonObject[]).filter((m) => m.direction === "inbound").map((m) => (m.content as JsonObject).text);
    expect(inbound).toEqual(["a"]);
    // Idle again: reject lets the next message through.
    expect((await send(id, { content: { text: "d", n: 1 }, multitask_strategy: "reject" })).status).toBe(202);
    ws.close();
  }, 60_000);

  it("interrupt (podium.json on_busy): the running turn is cancelled, ends as cancelled, and the new message runs next", async () => {
    const { id, ws } = await create("interrupt-ts");
    const a = await send(id, { content: { text: "a", n: 1000, delay: 20 } });
    const aTurn = Number(a.json.turn);
    await ws.waitFor((f) => f.messageType === "stream_update" && f.turn === aTurn);
    const b = await send(id, { content: { text: "b" } });
    expect(b.status).toBe(202);
    expect(b.json).toEqual({ seq: expect.any(Number), turn: expect.any(Number), queue_position: 1, cancelled_turns: [aTurn] });
    const aEvents = await turnEvents(ws, aTurn);
    expect(types(aEvents.slice(-2))).toEqual(["error", "turn.done"]);
    expect(aEvents.at(-2)?.content).toEqual({ message: `cancelled (on_busy "interrupt": turn ${String(b.json.turn)} runs instead)`, code: "cancelled", turn: aTurn });
    expect(aEvents.at(-1)?.content).toEqual({ turn: aTurn, ok: false, cancelled: true });
    const bEvents = await turnEvents(ws, Number(b.json.turn));
    expect(types(bEvents)).toEqual(["stream_update", "complete", "state.delta", "turn.done"]);
    // b started after a ended: nothing of a comes after b's first event.
    const firstOfB = ws.frames.findIndex((f) => f.turn === b.json.turn);
    expect(ws.frames.slice(firstOfB).some((f) => f.turn === aTurn)).toBe(false);
    const state = await podium.api("GET", `/api/v1/instances/${id}/state`);
    expect(state.json.state).toEqual({ finished: ["b"], cancelled: ["a"] });
    ws.close();
  }, 60_000);

  it("interrupt also supersedes queued messages: each ends with a cancelled error without running", async () => {
    const { id, ws } = await create("slow-ts");
    const a = await send(id, { content: { text: "a", n: 1000, delay: 20 } });
    const b = await send(id, { content: { text: "b", n: 1 } });
    const c = await send(id, { content: { text: "c", n: 1 }, multitask_strategy: "interrupt" });
    expect(c.json).toMatchObject({ queue_position: 1, cancelled_turns: [a.json.turn, b.json.turn] });
    const bEvents = await turnEvents(ws, Number(b.json.turn));
    expect(types(bEvents)).toEqual(["error", "turn.done"]);
    expect(bEvents[0]?.content).toMatchObject({ code: "cancelled", message: expect.stringContaining("cancelled before it ran") });
    expect((await turnEvents(ws, Number(a.json.turn))).at(-1)?.content).toEqual({ turn: a.json.turn, ok: false, cancelled: true });
    expect((await turnEvents(ws, Number(c.json.turn))).at(-1)?.content).toEqual({ turn: c.json.turn, ok: true });
    ws.close();
  }, 60_000);

  it("an idle agent runs the message at once whatever the strategy; a bad strategy is a 400 naming the choices", async () => {
    const { id, ws } = await create("slow-ts");
    const sent = await send(id, { content: { text: "x", n: 1 }, multitask_strategy: "interrupt" });
    expect(sent.json).toEqual({ seq: expect.any(Number), turn: expect.any(Number), queue_position: 0 });
    await turnEvents(ws, Number(sent.json.turn));
    // A bare body (no "content") is the content itself: the strategy is taken out of it, not given to the agent.
    const bare = await send(id, { text: "bare", n: 1, multitask_strategy: "reject" });
    expect(bare.status).toBe(202);
    await turnEvents(ws, Number(bare.json.turn));
    const log = await podium.api("GET", `/api/v1/instances/${id}/messages?limit=1000`);
    expect((log.json.messages as JsonObject[]).find((m) => m.seq === bare.json.seq)?.content).toEqual({ text: "bare", n: 1 });
    const bad = await send(id, { content: { text: "x" }, multitask_strategy: "rollback" });
    expect(bad.status).toBe(400);
    expect(String((bad.json.error as JsonObject).message)).toMatch(/multitask_strategy must be one of "enqueue", "reject", "interrupt" \("rollback" is not supported/);
    ws.close();
  }, 60_000);
});
