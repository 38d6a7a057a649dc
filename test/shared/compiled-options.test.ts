import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "@jest/globals";
import { createRouterTransport } from "@connectrpc/connect";
import { compileCoordinatorOptions, DEFAULT_AGENT_PATH, DEFAULT_DRAIN_DEADLINE_MS, DEFAULT_STALE_RETENTION_MS, type CoordinatorOptions } from "../../services/coordinator/coordinator-options.js";
import { DEFAULT_INSTANCE_LIMITS } from "../../services/coordinator/instance-limits.js";
import { DEFAULT_AGENT_UID_RANGE } from "../../services/coordinator/sandbox/agent-uids.js";
import { coordinatorClients, StaticCoordinatorDirectory } from "../../services/gateway/coordinator-directory.js";
import {
  compileBreakerOptions,
  compileGatewayOptions,
  DEFAULT_BREAKER_OPTIONS,
  DEFAULT_FAILOVER_WAIT_MS,
  DEFAULT_MAX_BUNDLE_BYTES,
  DEFAULT_MAX_JSON_BYTES,
  DEFAULT_RESUME_WINDOW_MS,
  type GatewayOptions,
} from "../../services/gateway/gateway-options.js";
import { LocalRegistry } from "../../services/registry/local-registry.js";
import { silentLogger } from "../../services/shared/logger.js";

const registry = new LocalRegistry({ dir: path.join(os.tmpdir(), "podium-compiled-options-unused") });
const directory = new StaticCoordinatorDirectory([
  coordinatorClients(
    "c1",
    createRouterTransport(() => undefined),
  ),
]);
const coordinator = (more: Partial<CoordinatorOptions> = {}): CoordinatorOptions => ({ dataDir: "/var/lib/podium", registry, logger: silentLogger, ...more });
const gateway = (more: Partial<GatewayOptions> = {}): GatewayOptions => ({ directory, registry, apiKeys: [], logger: silentLogger, ...more });

describe("compileCoordinatorOptions", () => {
  it("fills every default once", () => {
    const compiled = compileCoordinatorOptions(coordinator());
    expect(compiled.coordinatorId).toMatch(/^coord/);
    expect(compiled).toMatchObject({
      advertiseAddress: "",
      sandbox: "bwrap",
      agentPath: DEFAULT_AGENT_PATH,
      agentUids: DEFAULT_AGENT_UID_RANGE,
      networkAllow: [],
      cgroups: true,
      diskVolumes: true,
      warmRunners: 2,
      clusterSecret: "",
      insecureNoAuth: false,
      valkeyKeyPrefix: "podium:",
      drainDeadlineMs: DEFAULT_DRAIN_DEADLINE_MS,
      limits: DEFAULT_INSTANCE_LIMITS,
      replication: undefined,
      metricsPort: undefined,
    });
    expect(compiled.capacity).toBeGreaterThanOrEqual(8);
    expect(compiled.starts.concurrency).toBeGreaterThanOrEqual(2);
    expect(compiled.starts.maxWaitMs).toBe(10_000);
  });

  it("keeps what the caller set, merging partial limits over the defaults", () => {
    const compiled = compileCoordinatorOptions(
      coordinator({ sandbox: "auto", capacity: 3, limits: { pids: 64 }, starts: { concurrency: 1 }, warmRunners: 0, drainDeadlineMs: 0, metricsPort: 0, valkeyKeyPrefix: "t:" }),
    );
    expect(compiled).toMatchObject({ sandbox: "auto", capacity: 3, warmRunners: 0, drainDeadlineMs: 0, metricsPort: 0, valkeyKeyPrefix: "t:" });
    expect(compiled.limits).toEqual({ ...DEFAULT_INSTANCE_LIMITS, pids: 64 });
    expect(compiled.starts.concurrency).toBe(1);
  });

  it("fills the replication's stale-copy retention", () => {
    const compiled = compileCoordinatorOptions(coordinator({ replication: { s3: { bucket: "b" } } }));
    expect(compiled.replication?.staleRetentionMs).toBe(DEFAULT_STALE_RETENTION_MS);
  });

  it.each<[string, Partial<CoordinatorOptions>, RegExp]>([
    ["an empty data directory", { dataDir: "" }, /dataDir/],
    ["a capacity that is not a number", { capacity: Number("lots") }, /capacity: expected an integer >= 0, got null/],
    ["a negative drain deadline", { drainDeadlineMs: -1 }, /drainDeadlineMs/],
    ["an unknown sandbox mode", { sandbox: "docker" as CoordinatorOptions["sandbox"] }, /sandbox: expected one of bwrap, auto, none/],
    ["a metrics port out of range", { metricsPort: 70_000 }, /metricsPort/],
    ["no start slots", { starts: { concurrency: 0 } }, /starts\.concurrency/],
    ["a negative limit", { limits: { pids: -5 } }, /limits\.pids/],
    ["a uid range upside down", { agentUids: { first: 10, last: 5 } }, /agentUids/],
  ])("refuses %s, naming the option", (_what, bad, message) => {
    expect(() => compileCoordinatorOptions(coordinator(bad))).toThrow(message);
  });
});

describe("compileGatewayOptions", () => {
  it("fills every default once", () => {
    const compiled = compileGatewayOptions(gateway());
    expect(compiled).toMatchObject({
      maxJsonBytes: DEFAULT_MAX_JSON_BYTES,
      maxBundleBytes: DEFAULT_MAX_BUNDLE_BYTES,
      resumeWindowMs: DEFAULT_RESUME_WINDOW_MS,
      failoverWaitMs: DEFAULT_FAILOVER_WAIT_MS,
      metrics: [],
      wsOutbound: {},
      corsOrigins: [],
      spanExporter: undefined,
    });
    expect(DEFAULT_MAX_JSON_BYTES).toBe(2 * 1024 * 1024);
    expect(DEFAULT_MAX_BUNDLE_BYTES).toBe(100 * 1024 * 1024);
    expect(compiled.consoleDir).toMatch(/dist[/\\]console$/);
    expect(compiled.extensions(undefined as never, { outbound: {} })).toEqual([]);
  });

  it.each<[string, Partial<GatewayOptions>, RegExp]>([
    ["a zero JSON limit", { maxJsonBytes: 0 }, /maxJsonBytes: expected a positive integer, got 0/],
    ["a fractional bundle limit", { maxBundleBytes: 1.5 }, /maxBundleBytes/],
    ["a negative resume window", { resumeWindowMs: -1 }, /resumeWindowMs/],
    ["an empty API key", { apiKeys: ["good", ""] }, /apiKeys/],
    ["an empty CORS origin", { corsOrigins: [""] }, /corsOrigins/],
  ])("refuses %s, naming the option", (_what, bad, message) => {
    expect(() => compileGatewayOptions(gateway(bad))).toThrow(message);
  });
});

describe("compileBreakerOptions", () => {
  it("fills the breaker's defaults, keeping what was set (undefined means the default)", () => {
    expect(compileBreakerOptions()).toEqual(DEFAULT_BREAKER_OPTIONS);
    expect(compileBreakerOptions({ cooldownMs: 300, slowCallMs: undefined })).toEqual({ ...DEFAULT_BREAKER_OPTIONS, cooldownMs: 300 });
  });

  it("refuses a threshold of 0", () => {
    expect(() => compileBreakerOptions({ failureThreshold: 0 })).toThrow(/breaker option failureThreshold: expected a positive integer, got 0/);
  });
});
