/**
 * A create served by a warm runner, end to end in `podium dev`: once a bundle has started on this
 * coordinator, the next warm create is answered while the runner loads the entry (status `starting`),
 * a message sent at once is answered, and a start that fails after the answer ends the instance as
 * `failed` with its error in the log. Reads of the agent wait for such a start. A bundle that never started here is still answered only when ready
 * (its create fails with the agent's error).
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { startDevFixture, type DevFixture } from "../helpers/dev-fixture.js";
import type { JsonObject } from "../../services/shared/json.js";

let podium: DevFixture;

beforeAll(async () => {
  podium = await startDevFixture({ coordinator: { warmRunners: 1 } });
}, 60_000);

afterAll(async () => {
  await podium?.close();
});

const stats = () => podium.server.coordinator.manager.warmRunnerStats();

async function until<T>(check: () => T | undefined | Promise<T | undefined>, what: string, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function create(deployment: string, body: JsonObject = {}): Promise<{ status: number; json: JsonObject }> {
  return podium.api("POST", "/api/v1/instances", { deployment_id: `${deployment}:1.0.0@local`, ...body });
}

/** A create claimed from a ready pool (the first create of the runtime started it). */
async function warmCreate(deployment: string, body: JsonObject = {}) {
  await until(() => stats().ready.typescript === 1 || undefined, "a warm TypeScript runner");
  const claims = stats().claims;
  const created = await create(deployment, body);
  expect(stats().claims).toBe(claims + 1);
  return created;
}

describe("warm creates", () => {
  it("answer a bundle that started here before while the runner loads it, and a message sent at once is answered", async () => {
    const first = await create("faulty-ts");
    expect(first.status).toBe(201);
    expect(first.json.status).toBe("ready"); // the bundle's first start here: answered once ready
    const created = await warmCreate("faulty-ts");
    expect(created.status).toBe(201);
    expect(created.json.status).toBe("starting");
    const ws = await podium.connect(created.json.instance_id as string);
    ws.send({ type: "process_message", content: { text: "early" } });
    const update = await ws.waitFor((f) => f.messageType === "stream_update", 30_000);
    expect((update.content as JsonObject).text).toBe("ok:early");
    expect((await podium.api("GET", `/api/v1/instances/${created.json.instance_id}`)).json.status).toMatch(/^(ready|busy)$/);
  }, 90_000);

  it("let reads right after an early answer wait for the start: the initial state is there", async () => {
    expect((await create("echo-ts")).status).toBe(201); // proves the bundle here
    const created = await warmCreate("echo-ts");
    expect(created.json.status).toBe("starting");
    const state = await podium.api("GET", `/api/v1/instances/${created.json.instance_id}/state`);
    expect(state.status).toBe(200);
    expect(JSON.stringify(state.json)).toContain('"turns":0');
    const agent = await podium.api("GET", `/api/v1/agents/${created.json.agent_id}`);
    expect(agent.json.state_version).toBe(1);
  }, 90_000);

  it("end an instance whose start failed after the answer as failed, with the agent's error in its log", async () => {
    const created = await warmCreate("faulty-ts", { environment: { FAIL_START: "1" } });
    expect(created.status).toBe(201);
    expect(created.json.status).toBe("starting");
    const id = created.json.instance_id as string;
    // An ended instance answers 404 with its last record (the seed's contract).
    const ended = await until(async () => {
      const got = await podium.api("GET", `/api/v1/instances/${id}`);
      const instance = (got.status === 404 ? got.json.instance : got.json) as JsonObject | undefined;
      return instance?.status === "failed" || instance?.status === "terminated" ? instance : undefined;
    }, "the instance to end");
    expect(ended.status).toBe("failed");
    expect(ended.ready_at).toBeNull();
    expect(ended.exit).toMatchObject({ reason: "failed to start" });
    const logs = await podium.api("GET", `/api/v1/instances/${id}/logs`);
    expect(JSON.stringify(logs.json)).toContain("start refused: FAIL_START is set");
  }, 90_000);

  it("stop an instance answered early that is deleted before it is ready, like every starting instance", async () => {
    expect((await create("slow-start-ts")).status).toBe(201); // proves the bundle here (its module takes 6 s to load)
    const created = await warmCreate("slow-start-ts");
    expect(created.json.status).toBe("starting");
    const ws = await podium.connect(created.json.instance_id as string);
    const deleted = await podium.api("DELETE", `/api/v1/instances/${created.json.instance_id}`);
    expect(deleted.status).toBe(200);
    expect(deleted.json).toMatchObject({ status: "terminated", exit: { reason: "stopped" } });
    expect(ws.frames.filter((f) => f.messageType === "error")).toEqual([]);
    await ws.waitFor((f) => f.messageType === "terminated");
  }, 90_000);

  it("answer a bundle that never started here only when ready: a broken one's create fails, warm or not", async () => {
    for (let i = 0; i < 2; i++) {
      if (i > 0) await until(() => stats().ready.python === 1 || undefined, "a warm Python runner");
      const created = await create("broken-py");
      expect(created.status).toBeGreaterThanOrEqual(400);
    }
  }, 90_000);
});
