/**
 * Prometheus metrics: the text format (MetricsRegistry), the gateway's GET /metrics (API key, with the
 * in-process coordinator's metrics in dev mode) and a standalone coordinator's metrics port (cluster
 * secret), against real servers on port 0.
 */
import { describe, it, expect, beforeAll, afterAll } from "@jest/globals";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Histogram, MetricsRegistry, renderAll } from "../../services/shared/metrics.js";
import { createCoordinator, type Coordinator } from "../../services/coordinator/create-coordinator.js";
import { LocalRegistry } from "../../services/registry/local-registry.js";
import { silentLogger } from "../../services/shared/logger.js";
import { startDevFixture, API_KEY, type DevFixture, removeDataDir } from "../helpers/dev-fixture.js";

/** Value of one sample line (`name{labels} value`), or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const match = /^([a-z_:]+)(\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const got = Object.fromEntries([...(match[3] ?? "").matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(match[4]);
  }
  return undefined;
}

describe("MetricsRegistry", () => {
  it("renders HELP, TYPE and samples with escaped labels; refuses bad names; skips a failing family", async () => {
    const registry = new MetricsRegistry().register(
      { name: "x_total", help: "a counter\nwith two lines", type: "counter", collect: () => [{ labels: { path: 'a"b\\c\nd' }, value: 3 }] },
      {
        name: "broken",
        help: "fails",
        type: "gauge",
        collect: () => {
          throw new Error("boom");
        },
      },
      { name: "y", help: "a gauge", type: "gauge", collect: async () => 0.25 },
    );
    const text = await registry.render();
    expect(text).toBe(["# HELP x_total a counter\\nwith two lines", "# TYPE x_total counter", 'x_total{path="a\\"b\\\\c\\nd"} 3', "# HELP y a gauge", "# TYPE y gauge", "y 0.25", ""].join("\n"));
    expect(() => new MetricsRegistry().register({ name: "requests", help: "", type: "counter", collect: () => 1 })).toThrow(/_total/);
    expect(() => new MetricsRegistry().register({ name: "bad-name", help: "", type: "gauge", collect: () => 1 })).toThrow(/invalid metric name/);
    expect(() => registry.register({ name: "y", help: "", type: "gauge", collect: () => 1 })).toThrow(/twice/);
    const histogram = new Histogram([0.1, 1]);
    for (const value of [0.05, 0.5, 3]) histogram.observe(value);
    const latency = await new MetricsRegistry().register({ name: "h_seconds", help: "h", type: "histogram", collect: () => histogram.samples({ op: "x" }) }).render();
    expect(latency.split("\n").slice(2, -1)).toEqual([
      'h_seconds_bucket{op="x",le="0.1"} 1',
      'h_seconds_bucket{op="x",le="1"} 2',
      'h_seconds_bucket{op="x",le="+Inf"} 3',
      'h_seconds_sum{op="x"} 3.55',
      'h_seconds_count{op="x"} 3',
    ]);
    expect(await renderAll([registry, new MetricsRegistry().register({ name: "z", help: "z", type: "gauge", collect: () => 1 })])).toMatch(/y 0\.25\n# HELP z z\n# TYPE z gauge\nz 1\n$/);
  });
});

describe("GET /metrics on the gateway (dev mode)", () => {
  let podium: DevFixture;
  beforeAll(async () => {
    podium = await startDevFixture();
  }, 60_000);
  afterAll(async () => {
    await podium?.close();
  });

  it("needs the API key, and counts instances and REST responses", async () => {
    const anonymous = await fetch(`${podium.url}/metrics`);
    expect(anonymous.status).toBe(401);
    await anonymous.text();
    const created = await podium.api("POST", "/api/v1/instances", { deployment_id: "echo-ts:1.0.0@local" });
    expect(created.status).toBe(201);
    const missing = await podium.api("GET", "/api/v1/instances/inst-nope");
    expect(missing.status).toBe(404);
    const res = await fetch(`${podium.url}/metrics`, { headers: { authorization: `Bearer ${API_KEY}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    const text = await res.text();
    expect(sample(text, "podium_gateway_coordinators")).toBe(1);
    expect(sample(text, "podium_gateway_rest_requests_total", { code: "201" })).toBeGreaterThanOrEqual(1);
    expect(sample(text, "podium_gateway_rest_requests_total", { code: "404" })).toBeGreaterThanOrEqual(1);
    expect(sample(text, "podium_gateway_rest_requests_total", { code: "401" })).toBeGreaterThanOrEqual(1);
    expect(sample(text, "podium_instances", { coordinator_id: "local" })).toBe(1);
    expect(sample(text, "podium_instances_started_total", { coordinator_id: "local" })).toBe(1);
    expect(text).not.toMatch(/podium_replication_/); // not configured
    // create -> ready: one observation in the histogram's buckets, sum and count.
    expect(sample(text, "podium_instance_create_seconds_count", { coordinator_id: "local" })).toBe(1);
    expect(sample(text, "podium_instance_create_seconds_bucket", { coordinator_id: "local", le: "+Inf" })).toBe(1);
    expect(sample(text, "podium_instance_create_seconds_bucket", { coordinator_id: "local", le: "10" })).toBe(1);
    expect(sample(text, "podium_instance_create_seconds_sum", { coordinator_id: "local" })).toBeGreaterThan(0);
    // A turn: its events and its end are counted once recorded.
    const sent = await podium.api("POST", `/api/v1/instances/${String(created.json.instance_id)}/messages`, { content: { text: "count me" } });
    expect(sent.status).toBeLessThan(300);
    let turned = "";
    for (const until = Date.now() + 30_000; Date.now() < until; await new Promise((resolve) => setTimeout(resolve, 50))) {
      turned = await (await fetch(`${podium.url}/metrics`, { headers: { authorization: `Bearer ${API_KEY}` } })).text();
      if (sample(turned, "podium_turns_total", { coordinator_id: "local" }) === 1) break;
    }
    expect(sample(turned, "podium_turns_total", { coordinator_id: "local" })).toBe(1);
    expect(sample(turned, "podium_events_total", { coordinator_id: "local" })).toBeGreaterThanOrEqual(4); // stream_start, 2 updates, stream_end, …, turn.done
    await podium.api("DELETE", `/api/v1/instances/${String(created.json.instance_id)}`);
    const after = await (await fetch(`${podium.url}/metrics`, { headers: { authorization: `Bearer ${API_KEY}` } })).text();
    expect(sample(after, "podium_instances", { coordinator_id: "local" })).toBe(0);
    expect(sample(after, "podium_instances_ended_total", { coordinator_id: "local", status: "terminated" })).toBe(1);
    // The first create of a runtime found no warm runner (it starts the pool); warm runners are not instances.
    expect(sample(after, "podium_warm_runner_creates_total", { coordinator_id: "local", outcome: "missed" })).toBe(1);
    expect(sample(after, "podium_warm_runner_creates_total", { coordinator_id: "local", outcome: "claimed" })).toBe(0);
    expect(sample(after, "podium_warm_runners", { coordinator_id: "local", runtime: "python" })).toBe(0);
    expect(sample(after, "podium_warm_runner_deaths_total", { coordinator_id: "local" })).toBe(0);
  }, 30_000);
});

describe("a coordinator's metrics port", () => {
  let dataDir: string;
  let coordinator: Coordinator;
  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-metrics-"));
    coordinator = createCoordinator({
      dataDir,
      registry: new LocalRegistry({ dir: path.join(dataDir, "registry") }),
      clusterSecret: "secret-0123456789",
      metricsPort: 0,
      coordinatorId: "coord-m",
      logger: silentLogger,
    });
    await coordinator.listen(0);
  });
  afterAll(async () => {
    await coordinator?.close();
    removeDataDir(dataDir);
  });

  it("serves GET /metrics over HTTP/1.1 to callers with the cluster secret only", async () => {
    const base = `http://127.0.0.1:${String(coordinator.metricsPort)}`;
    const denied = await fetch(`${base}/metrics`);
    expect(denied.status).toBe(401);
    expect(await denied.json()).toMatchObject({ error: { code: "unauthenticated" } });
    const other = await fetch(`${base}/other`, { headers: { authorization: "Bearer secret-0123456789" } });
    expect(other.status).toBe(404);
    await other.text();
    const ok = await fetch(`${base}/metrics`, { headers: { authorization: "Bearer secret-0123456789" } });
    expect(ok.status).toBe(200);
    const text = await ok.text();
    expect(sample(text, "podium_instances_capacity", { coordinator_id: "coord-m" })).toBeGreaterThan(0);
    expect(sample(text, "podium_coordinator_draining", { coordinator_id: "coord-m" })).toBe(0);
  });
});
