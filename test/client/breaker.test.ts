import { describe, it, expect, beforeAll, afterAll, beforeEach } from "@jest/globals";
import { ConsecutiveBreaker, PodiumClient, PodiumConnectionError } from "../../packages/client/src/index.js";
import { FakeUpstream, json, refusedUrl } from "./fake-upstream.js";

const transient = new PodiumConnectionError("boom", { kind: "network" });
const clientError = new PodiumConnectionError("bad request", { kind: "http", status: 400 });
const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function breaker(cooldownMs = 1_000) {
  return new ConsecutiveBreaker({ failureThreshold: 5, cooldownMs, countsAsFailure: (e) => e === transient });
}

async function outcome(b: ConsecutiveBreaker, result: "ok" | "fail" | "4xx"): Promise<string> {
  try {
    await b.fire(async () => {
      if (result === "fail") throw transient;
      if (result === "4xx") throw clientError;
      return "ok";
    });
    return "ok";
  } catch (error) {
    return error instanceof PodiumConnectionError && error.kind === "circuit_open" ? "rejected" : "failed";
  }
}

describe("ConsecutiveBreaker", () => {
  it("opens after exactly 5 consecutive failures, not on a failure rate", async () => {
    const b = breaker();
    for (let i = 0; i < 4; i++) await outcome(b, "fail");
    await outcome(b, "ok"); // resets the streak
    for (let i = 0; i < 4; i++) await outcome(b, "fail");
    expect(b.state).toBe("closed"); // 8 of 9 failed, but never 5 in a row
    expect(b.consecutiveFailures).toBe(4);
    await outcome(b, "fail");
    expect(b.state).toBe("open");
    let ran = false;
    await expect(
      b.fire(async () => {
        ran = true;
      }),
    ).rejects.toMatchObject({ kind: "circuit_open" });
    expect(ran).toBe(false);
    b.close();
  });

  it("does not count errors the filter rejects (a 4xx), and they reset the streak", async () => {
    const b = breaker();
    for (let i = 0; i < 4; i++) await outcome(b, "fail");
    expect(await outcome(b, "4xx")).toBe("failed");
    expect(b.consecutiveFailures).toBe(0);
    for (let i = 0; i < 10; i++) await outcome(b, "4xx");
    expect(b.state).toBe("closed");
    b.close();
  });

  it("goes half-open after the cooldown; the first success closes it", async () => {
    const b = breaker(100);
    for (let i = 0; i < 5; i++) await outcome(b, "fail");
    expect(await outcome(b, "ok")).toBe("rejected");
    await wait(150);
    expect(b.state).toBe("half_open");
    expect(await outcome(b, "ok")).toBe("ok");
    expect(b.state).toBe("closed");
    expect(b.consecutiveFailures).toBe(0);
    // Closed again: it takes five new failures to open.
    for (let i = 0; i < 4; i++) await outcome(b, "fail");
    expect(b.state).toBe("closed");
    b.close();
  });

  it("lets one trial call through while half-open, and re-opens when it fails", async () => {
    const b = breaker(100);
    for (let i = 0; i < 5; i++) await outcome(b, "fail");
    await wait(150);
    let release: () => void = () => undefined;
    const trial = b.fire(() => new Promise<void>((resolve) => (release = resolve)).then(() => Promise.reject(transient)));
    expect(await outcome(b, "ok")).toBe("rejected"); // a second caller during the trial
    release();
    await expect(trial).rejects.toBe(transient);
    expect(b.state).toBe("open");
    expect(await outcome(b, "ok")).toBe("rejected");
    await wait(150);
    expect(await outcome(b, "ok")).toBe("ok");
    b.close();
  });
});

describe("createInstance behind the breaker (real sockets)", () => {
  let upstream: FakeUpstream;
  beforeAll(async () => {
    upstream = await FakeUpstream.start();
  });
  afterAll(async () => {
    await upstream.close();
  });
  beforeEach(() => {
    upstream.requests.length = 0;
  });

  it("fails fast with circuit_open after 5 failed calls, without touching the network", async () => {
    upstream.handler = (_req, res) => json(res, 500, { error: { code: "internal", message: "down" } });
    const c = new PodiumClient({ url: upstream.url, retry: { maxRetries: 0 }, breaker: { cooldownMs: 200 } }, {});
    for (let i = 0; i < 5; i++) await expect(c.createInstance({ agentType: "echo" })).rejects.toMatchObject({ kind: "http", status: 500 });
    expect(c.breakerState).toBe("open");
    await expect(c.createInstance({ agentType: "echo" })).rejects.toMatchObject({ kind: "circuit_open" });
    expect(upstream.count("POST")).toBe(5);

    upstream.handler = (_req, res) => json(res, 201, { instance_id: "inst-9", deployment_id: "echo:1.0.0@local" });
    await wait(250);
    await expect(c.createInstance({ agentType: "echo" })).resolves.toEqual({ instanceId: "inst-9", deploymentId: "echo:1.0.0@local" });
    expect(c.breakerState).toBe("closed");
    await c.close();
  });

  it("counts one failed call (after its retries) as one failure", async () => {
    const c = new PodiumClient({ url: await refusedUrl(), sleep: async () => undefined, breaker: { cooldownMs: 10_000 } }, {});
    for (let i = 0; i < 4; i++) await expect(c.createInstance({ agentType: "echo" })).rejects.toMatchObject({ kind: "network" });
    expect(c.breakerState).toBe("closed");
    await expect(c.createInstance({ agentType: "echo" })).rejects.toMatchObject({ kind: "network" });
    expect(c.breakerState).toBe("open");
    await expect(c.createInstance({ agentType: "echo" })).rejects.toMatchObject({ kind: "circuit_open" });
    await c.close();
  });

  it("does not trip on 4xx answers", async () => {
    upstream.handler = (_req, res) => json(res, 400, { error: { code: "invalid_argument", message: "bad deployment id" } });
    const c = new PodiumClient({ url: upstream.url }, {});
    for (let i = 0; i < 7; i++) await expect(c.createInstance({ agentType: "echo" })).rejects.toMatchObject({ status: 400 });
    expect(c.breakerState).toBe("closed");
    expect(upstream.count("POST")).toBe(7);
    await c.close();
  });
});
