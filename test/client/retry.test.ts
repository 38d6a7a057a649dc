import { describe, it, expect, beforeAll, afterAll, beforeEach } from "@jest/globals";
import { JITTER_MAX, JITTER_MIN, PodiumClient, PodiumConnectionError, compileClientOptions, retryDelayMs } from "../../packages/client/src/index.js";
import { FakeUpstream, json, recordingSleep, refusedUrl } from "./fake-upstream.js";

const SCHEDULE = [500, 1000, 2000, 4000];

describe("retryDelayMs", () => {
  it("follows 500, 1000, 2000, 4000 without jitter and repeats the last delay", () => {
    const options = compileClientOptions({ url: "http://x", retry: { jitter: false, maxRetries: 6 } }, {});
    expect([1, 2, 3, 4, 5, 6].map((n) => retryDelayMs(n, options))).toEqual([500, 1000, 2000, 4000, 4000, 4000]);
  });

  it("keeps jittered delays within [0.8, 1.2) of the schedule", () => {
    for (const r of [0, 0.25, 0.5, 0.999999]) {
      const options = compileClientOptions({ url: "http://x", random: () => r }, {});
      SCHEDULE.forEach((base, i) => {
        const delay = retryDelayMs(i + 1, options);
        expect(delay).toBeGreaterThanOrEqual(Math.floor(base * JITTER_MIN));
        expect(delay).toBeLessThanOrEqual(Math.ceil(base * JITTER_MAX));
      });
    }
    const low = compileClientOptions({ url: "http://x", random: () => 0 }, {});
    expect(retryDelayMs(1, low)).toBe(400);
  });
});

describe("createInstance retries (real sockets, injected sleep)", () => {
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

  function client(extra: ConstructorParameters<typeof PodiumClient>[0] = {}) {
    const recorder = recordingSleep();
    return { client: new PodiumClient({ url: upstream.url, sleep: recorder.sleep, ...extra }, {}), delays: recorder.delays };
  }

  it("retries a 500 three times on the jittered schedule, then fails with the server's error", async () => {
    upstream.handler = (_req, res) => json(res, 500, { error: { code: "internal", message: "disk full" } });
    const { client: c, delays } = client();
    const error = await c.createInstance({ agentType: "echo" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PodiumConnectionError);
    expect(error).toMatchObject({ kind: "http", status: 500, code: "internal" });
    expect(upstream.count("POST", "/api/v1/instances")).toBe(4);
    expect(delays).toHaveLength(3);
    delays.forEach((delay, i) => {
      const base = SCHEDULE[i] as number;
      expect(delay).toBeGreaterThanOrEqual(base * JITTER_MIN);
      expect(delay).toBeLessThanOrEqual(base * JITTER_MAX);
    });
    await c.close();
  });

  it("succeeds when a retry succeeds", async () => {
    let calls = 0;
    upstream.handler = (_req, res) => {
      calls += 1;
      if (calls <= 2) json(res, 503, { error: { code: "unavailable", message: "starting" } });
      else json(res, 200, { instance_id: "inst-3", deployment_id: "echo:1.0.0@local" });
    };
    const { client: c, delays } = client({ retry: { jitter: false } });
    await expect(c.createInstance({ agentType: "echo" })).resolves.toEqual({ instanceId: "inst-3", deploymentId: "echo:1.0.0@local" });
    expect(delays).toEqual([500, 1000]);
    await c.close();
  });

  it("retries 429 but not other 4xx", async () => {
    upstream.handler = (_req, res) => json(res, 429, { error: { code: "resource_exhausted", message: "too many instances" } });
    const a = client();
    await expect(a.client.createInstance({ agentType: "echo" })).rejects.toMatchObject({ status: 429, code: "resource_exhausted" });
    expect(upstream.count("POST")).toBe(4);
    await a.client.close();

    upstream.requests.length = 0;
    upstream.handler = (_req, res) => json(res, 404, { error: { code: "not_found", message: "no deployment echo:1.0.0@local" } });
    const b = client();
    await expect(b.client.createInstance({ agentType: "echo" })).rejects.toMatchObject({ kind: "http", status: 404, code: "not_found" });
    expect(upstream.count("POST")).toBe(1);
    expect(b.delays).toEqual([]);
    await b.client.close();
  });

  it("retries network errors against a port that refuses", async () => {
    const recorder = recordingSleep();
    const c = new PodiumClient({ url: await refusedUrl(), sleep: recorder.sleep }, {});
    await expect(c.createInstance({ agentType: "echo" })).rejects.toMatchObject({ kind: "network" });
    expect(recorder.delays).toHaveLength(3);
    await c.close();
  });

  it("retries a stalled attempt after its timeout", async () => {
    upstream.handler = () => undefined; // never answers
    const { client: c, delays } = client({ createTimeoutMs: 100, retry: { maxRetries: 1 } });
    await expect(c.createInstance({ agentType: "echo" })).rejects.toMatchObject({ kind: "timeout" });
    expect(upstream.count("POST")).toBe(2);
    expect(delays).toHaveLength(1);
    await c.close();
  });

  it("stops retrying when the caller aborts during the backoff", async () => {
    upstream.handler = (_req, res) => json(res, 500, {});
    const controller = new AbortController();
    const c = new PodiumClient(
      {
        url: upstream.url,
        sleep: async (_ms, signal) => {
          controller.abort(new Error("user left"));
          if (signal?.aborted) throw signal.reason;
        },
      },
      {},
    );
    await expect(c.createInstance({ agentType: "echo" }, { signal: controller.signal })).rejects.toMatchObject({ kind: "aborted" });
    expect(upstream.count("POST")).toBe(1);
    await c.close();
  });

  it("retries stopInstance on 5xx and treats 404 as success", async () => {
    let calls = 0;
    upstream.handler = (_req, res) => {
      calls += 1;
      if (calls === 1) json(res, 502, {});
      else json(res, 404, { error: { code: "not_found", message: "gone" } });
    };
    const { client: c, delays } = client();
    await expect(c.stopInstance("inst-1")).resolves.toBeUndefined();
    expect(upstream.requests.map((r) => `${r.method} ${r.url}`)).toEqual(["DELETE /api/v1/instances/inst-1", "DELETE /api/v1/instances/inst-1"]);
    expect(delays).toHaveLength(1);
    await c.close();
  });
});
