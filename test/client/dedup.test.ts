import { describe, it, expect, beforeAll, afterAll, beforeEach } from "@jest/globals";
import { PodiumClient } from "../../packages/client/src/index.js";
import { FakeUpstream, json } from "./fake-upstream.js";

const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("connection deduplication (createInstance with sessionId)", () => {
  let upstream: FakeUpstream;
  let created = 0;
  beforeAll(async () => {
    upstream = await FakeUpstream.start();
  });
  afterAll(async () => {
    await upstream.close();
  });
  beforeEach(() => {
    upstream.requests.length = 0;
    upstream.abortedRequests = 0;
    created = 0;
    upstream.handler = (_req, res) => {
      created += 1;
      const id = `inst-${created}`;
      setTimeout(() => json(res, 201, { instance_id: id, deployment_id: "coding-agent:1.0.0@local" }), 100);
    };
  });

  it("10 concurrent activations of one session share one POST and one instance", async () => {
    const c = new PodiumClient({ url: upstream.url }, {});
    const results = await Promise.all(Array.from({ length: 10 }, () => c.createInstance({ agentType: "coding-agent", sessionId: "sess-1" })));
    expect(upstream.count("POST", "/api/v1/instances")).toBe(1);
    expect(new Set(results.map((r) => r.instanceId))).toEqual(new Set(["inst-1"]));
    await c.close();
  });

  it("different sessions do not share, and a later activation makes a new request", async () => {
    const c = new PodiumClient({ url: upstream.url }, {});
    const [a, b] = await Promise.all([c.createInstance({ agentType: "coding-agent", sessionId: "a" }), c.createInstance({ agentType: "coding-agent", sessionId: "b" })]);
    expect(a.instanceId).not.toBe(b.instanceId);
    const again = await c.createInstance({ agentType: "coding-agent", sessionId: "a" });
    expect(again.instanceId).not.toBe(a.instanceId);
    expect(upstream.count("POST")).toBe(3);
    await c.close();
  });

  it("calls without a sessionId are not deduplicated", async () => {
    const c = new PodiumClient({ url: upstream.url }, {});
    await Promise.all([c.createInstance({ agentType: "coding-agent" }), c.createInstance({ agentType: "coding-agent" })]);
    expect(upstream.count("POST")).toBe(2);
    await c.close();
  });

  it("shares failures too", async () => {
    upstream.handler = (_req, res) => setTimeout(() => json(res, 403, { error: { code: "permission_denied", message: "no" } }), 50);
    const c = new PodiumClient({ url: upstream.url }, {});
    const outcomes = await Promise.allSettled(Array.from({ length: 5 }, () => c.createInstance({ agentType: "x", sessionId: "s" })));
    expect(outcomes.every((o) => o.status === "rejected" && (o.reason as { code?: string }).code === "permission_denied")).toBe(true);
    expect(upstream.count("POST")).toBe(1);
    await c.close();
  });

  it("one waiter aborting does not cancel the others; all aborting cancels the request", async () => {
    const c = new PodiumClient({ url: upstream.url }, {});
    const quitter = new AbortController();
    const first = c.createInstance({ agentType: "coding-agent", sessionId: "s" }, { signal: quitter.signal });
    const stayer = c.createInstance({ agentType: "coding-agent", sessionId: "s" });
    await wait(20);
    quitter.abort();
    await expect(first).rejects.toMatchObject({ kind: "aborted" });
    await expect(stayer).resolves.toMatchObject({ instanceId: "inst-1" });
    expect(upstream.abortedRequests).toBe(0);

    const x = new AbortController();
    const y = new AbortController();
    const px = c.createInstance({ agentType: "coding-agent", sessionId: "t" }, { signal: x.signal });
    const py = c.createInstance({ agentType: "coding-agent", sessionId: "t" }, { signal: y.signal });
    await wait(20);
    x.abort();
    y.abort();
    await expect(px).rejects.toMatchObject({ kind: "aborted" });
    await expect(py).rejects.toMatchObject({ kind: "aborted" });
    await wait(150);
    expect(upstream.abortedRequests).toBe(1);
    expect(upstream.count("POST")).toBe(2);
    expect(c.breakerState).toBe("closed");
    await c.close();
  });
});
