/**
 * PodiumClient against a real Podium (dev server: gateway + coordinator + agents), with faults
 * injected through a proxy in front of it (dropped connections, stalls, 503s), a stopped server
 * and a port that refuses connections.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { API_KEY, startDevFixture, type DevFixture } from "../helpers/dev-fixture.js";
import { PodiumClient, PodiumConnectionError, type PodiumEvent, type PodiumClientOptions } from "../../packages/client/src/index.js";
import { FaultProxy, refusedUrl } from "./fault-proxy.js";

let fixture: DevFixture;
const owned: { close(): Promise<void> }[] = [];

function client(options: PodiumClientOptions = {}): PodiumClient {
  const c = new PodiumClient({ url: fixture.url, apiKey: API_KEY, ...options }, {});
  owned.push(c);
  return c;
}

async function proxy(): Promise<FaultProxy> {
  const p = await FaultProxy.start(fixture.url);
  owned.push(p);
  return p;
}

async function collect(events: AsyncIterable<PodiumEvent>, until: (e: PodiumEvent) => boolean): Promise<PodiumEvent[]> {
  const out: PodiumEvent[] = [];
  for await (const event of events) {
    out.push(event);
    if (until(event)) break;
  }
  return out;
}

async function failure(work: Promise<unknown>): Promise<PodiumConnectionError> {
  try {
    await work;
  } catch (err) {
    if (err instanceof PodiumConnectionError) return err;
    throw err;
  }
  throw new Error("expected a PodiumConnectionError");
}

beforeAll(async () => {
  fixture = await startDevFixture();
}, 60_000);

afterAll(async () => {
  for (const o of owned.splice(0).reverse()) await o.close();
  await fixture?.close();
});

describe("PodiumClient against a real gateway", () => {
  it("creates an instance, streams a turn over connect(), probes it, reads its history and stops it", async () => {
    const podium = client();
    const created = await podium.createInstance({ agentType: "echo-ts" });
    expect(created).toMatchObject({ deploymentId: "echo-ts:1.0.0@local", instanceId: expect.stringMatching(/^inst-/), agentId: expect.stringMatching(/^agent-/) });
    expect(await podium.isAlive(created.instanceId)).toBe(true);

    const connection = await podium.connect(created.instanceId);
    await connection.sendMessage("hello real gateway", { mode: "test" });
    const events = await collect(connection.events, (e) => e.messageType === "stream_end");
    expect(events.map((e) => e.messageType)).toEqual(["stream_start", "stream_update", "stream_update", "stream_update", "stream_end"]);
    expect(
      events
        .filter((e) => e.messageType === "stream_update")
        .map((e) => e.content?.text)
        .join(""),
    ).toBe("hello real gateway");
    expect(events.every((e) => typeof e.seq === "number" && e.agentId === created.agentId)).toBe(true);
    await connection.close();

    // The message (with its metadata) is in the agent's history.
    const history = await podium.listMessages(created.instanceId);
    expect(history.messages.filter((m) => m.direction === "inbound")).toEqual([expect.objectContaining({ messageType: "process_message", content: { text: "hello real gateway", mode: "test" } })]);

    await podium.stopInstance(created.instanceId);
    expect(await podium.isAlive(created.instanceId)).toBe(false);
    // Stopping what is gone is success: an id the server has never seen answers 404.
    expect((await fixture.api("DELETE", "/api/v1/instances/inst-neverexisted")).status).toBe(404);
    await expect(podium.stopInstance("inst-neverexisted")).resolves.toBeUndefined();
  });

  it("reads a versioned workspace: listFiles, readFile, fileHistory, fileAtIteration", async () => {
    const podium = client();
    const { instanceId } = await podium.createInstance({ agentType: "acp-ts" });
    for (const content of ["first draft", "second draft"]) {
      const sent = await podium.postMessage(instanceId, { text: `write notes.txt ${content}` });
      const connection = await podium.connect(instanceId, { afterSeq: sent.seq });
      await collect(connection.events, (e) => e.messageType === "complete");
      await connection.close();
    }
    expect(await podium.listFiles(instanceId)).toContainEqual(expect.objectContaining({ path: "notes.txt", type: "file", size: "second draft".length }));
    expect(await podium.readFile(instanceId, "notes.txt")).toMatchObject({ path: "notes.txt", content: "second draft", encoding: "utf8" });
    const history = await podium.fileHistory(instanceId, "notes.txt");
    expect(history.length).toBe(2);
    const firstIteration = history[0]?.iteration as number;
    expect(await podium.fileAtIteration(instanceId, "notes.txt", firstIteration)).toMatchObject({ content: "first draft" });
    const missing = await failure(podium.readFile(instanceId, "nope.txt"));
    expect(missing).toMatchObject({ kind: "http", status: 404, code: "not_found" });
    await podium.stopInstance(instanceId);
  });

  it("10 concurrent activations of one session make exactly one POST /api/v1/instances", async () => {
    const p = await proxy();
    const podium = client({ url: p.url });
    const before = (await podium.listInstances({ deploymentId: "echo-ts:1.0.0@local" })).length;
    const results = await Promise.all(Array.from({ length: 10 }, () => podium.createInstance({ agentType: "echo-ts", sessionId: "session-42" })));
    expect(p.count("POST", "/api/v1/instances")).toBe(1);
    expect(new Set(results.map((r) => r.instanceId)).size).toBe(1);
    expect((await podium.listInstances({ deploymentId: "echo-ts:1.0.0@local" })).length).toBe(before + 1);
    await podium.stopInstance(results[0]?.instanceId as string);
  });

  it.each([
    ["a port that refuses connections", async () => refusedUrl()],
    [
      "a stopped server",
      async () => {
        const p = await FaultProxy.start(fixture.url);
        const url = p.url;
        await p.close();
        return url;
      },
    ],
  ])("the breaker opens after exactly 5 failures against %s and then fails fast", async (_name, target) => {
    const podium = client({ url: await target(), breaker: { cooldownMs: 60_000 }, retry: { maxRetries: 0 } });
    for (let i = 1; i <= 5; i++) {
      expect(podium.breakerState).toBe("closed");
      expect(await failure(podium.createInstance({ agentType: "echo-ts" }))).toMatchObject({ kind: "network" });
    }
    expect(podium.breakerState).toBe("open");
    const started = performance.now();
    expect(await failure(podium.createInstance({ agentType: "echo-ts" }))).toMatchObject({ kind: "circuit_open" });
    expect(performance.now() - started).toBeLessThan(100);
  });

  it("counts whole calls (with their retries) and sends nothing while open; half-opens after the cooldown and the first success closes it", async () => {
    const p = await proxy();
    p.fault = () => "drop";
    const podium = client({ url: p.url, breaker: { cooldownMs: 300 }, retry: { maxRetries: 1, delaysMs: [10] } });
    for (let i = 0; i < 5; i++) await failure(podium.createInstance({ agentType: "echo-ts" }));
    expect(p.count("POST", "/api/v1/instances")).toBe(10); // 5 calls x (1 attempt + 1 retry)
    expect(podium.breakerState).toBe("open");
    expect(await failure(podium.createInstance({ agentType: "echo-ts" }))).toMatchObject({ kind: "circuit_open" });
    expect(p.count("POST", "/api/v1/instances")).toBe(10);

    await new Promise((r) => setTimeout(r, 400));
    expect(podium.breakerState).toBe("half_open");
    p.fault = () => "pass";
    const created = await podium.createInstance({ agentType: "echo-ts" });
    expect(podium.breakerState).toBe("closed");
    expect(p.count("POST", "/api/v1/instances")).toBe(11);
    await podium.stopInstance(created.instanceId);
  });

  it("retries 5xx with the configured backoff schedule, within jitter", async () => {
    const p = await proxy();
    let posts = 0;
    p.fault = (req) => (req.method === "POST" && ++posts <= 3 ? { status: 503 } : "pass");
    const delays = [150, 300, 600];
    const podium = client({ url: p.url, retry: { delaysMs: delays, maxRetries: 3 } });
    const created = await podium.createInstance({ agentType: "echo-ts" });
    const at = p.requests.filter((r) => r.method === "POST").map((r) => r.at);
    expect(at).toHaveLength(4);
    for (let i = 0; i < 3; i++) {
      const gap = (at[i + 1] as number) - (at[i] as number);
      expect(gap).toBeGreaterThanOrEqual((delays[i] as number) * 0.8 - 5);
      expect(gap).toBeLessThan((delays[i] as number) * 1.2 + 250);
    }
    await podium.stopInstance(created.instanceId);
  });

  it("isAlive returns false within its timeout when the server stalls", async () => {
    const podium0 = client();
    const { instanceId } = await podium0.createInstance({ agentType: "echo-ts" });
    const p = await proxy();
    p.fault = (req) => (req.method === "GET" ? "stall" : "pass");
    const podium = client({ url: p.url, isAliveTimeoutMs: 300 });
    const started = performance.now();
    expect(await podium.isAlive(instanceId)).toBe(false);
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(280);
    expect(elapsed).toBeLessThan(1_500);
    expect(await podium0.isAlive(instanceId)).toBe(true);
    await podium0.stopInstance(instanceId);
  });

  it("file calls time out after fileTimeoutMs against a stalling server", async () => {
    const p = await proxy();
    p.fault = () => "stall";
    const podium = client({ url: p.url, fileTimeoutMs: 200 });
    const started = performance.now();
    expect(await failure(podium.readFile("inst-any", "a.txt"))).toMatchObject({ kind: "timeout" });
    expect(performance.now() - started).toBeLessThan(1_500);
  });
});
