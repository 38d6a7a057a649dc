/**
 * The separate-process path: `podium gateway` and `podium coordinator` as their own OS processes (a static
 * coordinator list, a shared local registry), each exporting to a real OTLP/HTTP endpoint. The trace context
 * crosses from the gateway to the coordinator as gRPC metadata over h2c, so the coordinator's spans are
 * children of the gateway's under the client's trace id; GET /api/v1/traces/{id} on the gateway reads the
 * coordinator process's spans back with its own.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "@jest/globals";
import { CLUSTER_API_KEY, restCall, spawnPodium, type PodiumProcess } from "../helpers/cluster-processes.js";
import { LocalRegistry } from "../../services/registry/local-registry.js";
import { packBundle } from "../../services/registry/bundle-archive.js";
import { REPO_ROOT } from "../../services/coordinator/runtime-commands.js";
import { OtlpCollector, type CollectedSpan } from "./otlp-collector.js";
import { removeDataDir } from "../helpers/dev-fixture.js";

const TRACE = "5bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN = "00f067aa0ba902b7";

let collector: OtlpCollector;
const processes: PodiumProcess[] = [];
const root = fs.mkdtempSync(path.join(os.tmpdir(), "podium-trace-cluster-"));

beforeAll(async () => {
  collector = await OtlpCollector.start();
  const registry = path.join(root, "registry");
  await new LocalRegistry({ dir: registry }).upload(await packBundle(path.join(REPO_ROOT, "test/tracing/fixtures/trace-ts")));
  const env = { PODIUM_OTLP_ENDPOINT: collector.endpoint };
  const dataDir = path.join(root, "coord");
  const coordinator = await spawnPodium({
    role: "coordinator",
    id: "coord-t",
    dataDir,
    env,
    args: ["--port", "0", "--data", dataDir, "--registry", registry, "--id", "coord-t", "--unsandboxed", "--warm-runners", "0"],
  });
  processes.push(coordinator);
  processes.push(
    await spawnPodium({ role: "gateway", id: "gateway-t", env: { ...env, PODIUM_API_KEY: CLUSTER_API_KEY }, args: ["--port", "0", "--coordinator", coordinator.url, "--registry", registry] }),
  );
}, 90_000);

afterAll(async () => {
  await Promise.all(processes.map((p) => p.stop("SIGTERM", 10_000)));
  await collector?.close();
  removeDataDir(root);
});

it("a turn sent to a separate gateway is traced through the coordinator process to the agent", async () => {
  const gateway = processes[1]?.url as string;
  const created = await restCall(gateway, "POST", "/api/v1/instances", { deployment_id: "trace-ts:1.0.0@local" });
  expect(created.status).toBe(201);
  const sent = await fetch(`${gateway}/api/v1/instances/${created.json.instance_id as string}/messages`, {
    method: "POST",
    headers: { authorization: `Bearer ${CLUSTER_API_KEY}`, "content-type": "application/json", traceparent: `00-${TRACE}-${CLIENT_SPAN}-01` },
    body: JSON.stringify({ content: {} }),
  });
  expect(sent.status).toBe(202);
  const spans = await collector.waitFor(TRACE, (list) => list.some((s) => s.service === "podium-agent"));
  const find = (service: string, name: string, kind?: number): CollectedSpan | undefined => spans.find((s) => s.service === service && s.name === name && (kind === undefined || s.kind === kind));
  const rest = find("podium-gateway", "POST /api/v1/instances/{id}/messages");
  const call = find("podium-gateway", "podium.v1.InstanceService/SendMessage", 3);
  const handled = find("podium-coordinator", "podium.v1.InstanceService/SendMessage", 2);
  const turn = find("podium-coordinator", "podium.turn");
  const agent = find("podium-agent", "agent onMessage");
  expect(rest?.parentSpanId).toBe(CLIENT_SPAN);
  expect(call?.parentSpanId).toBe(rest?.spanId);
  expect(handled?.parentSpanId).toBe(call?.spanId); // across processes, as gRPC metadata
  expect(handled?.attributes).toContainEqual({ key: "rpc.system", value: { stringValue: "grpc" } });
  expect(turn?.parentSpanId).toBe(handled?.spanId);
  expect(agent?.parentSpanId).toBe(turn?.spanId);

  // The same trace read back from the gateway: its own spans and the coordinator process's (CoordinatorService.GetTrace).
  const read = await restCall(gateway, "GET", `/api/v1/traces/${TRACE}`);
  expect(read.status).toBe(200);
  const kept = read.json.spans as { service: string; span_id: string; duration_ms: number }[];
  expect(kept.map((s) => s.span_id).sort()).toEqual([rest, call, handled, turn, agent].map((s) => s?.spanId).sort());
  expect(new Set(kept.map((s) => s.service))).toEqual(new Set(["podium-gateway", "podium-coordinator", "podium-agent"]));
  expect(read.json.unreachable).toEqual([]);
}, 90_000);
