/**
 * Bursts of creates against a cluster of OS processes (redis-server, s3rver, a gateway, two coordinators):
 * the coordinators keep heartbeating (none is declared lost), every create is answered 201 or 429 with
 * Retry-After, and afterwards no agent process runs that the platform does not list. A create whose caller
 * gives up while the agent starts leaves no agent behind.
 */
import { describe, it, expect, beforeAll, afterAll } from "@jest/globals";
import path from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { InstanceService } from "../../gen/podium/v1/instance_service_pb.js";
import { packBundle } from "../../services/registry/bundle-archive.js";
import { REPO_ROOT } from "../../services/coordinator/runtime-commands.js";
import type { JsonObject } from "../../services/shared/json.js";
import { CLUSTER_API_KEY, startCluster, until, type PodiumProcess, type TestCluster } from "../helpers/cluster-processes.js";
import { agentProcesses, runningInstanceIds } from "../helpers/agent-processes.js";

let cluster: TestCluster;
let G: string;
let dataDirs: string[];

beforeAll(async () => {
  cluster = await startCluster({ coordinators: 2, gateways: 1 });
  G = (cluster.gateways[0] as PodiumProcess).url;
  dataDirs = cluster.coordinators.map((c) => c.dataDir);
  for (const dir of ["examples/echo-ts", "test/fixtures/bundles/slow-start-ts"]) {
    const deployed = await cluster.api(G, "POST", "/api/v1/deployments", await packBundle(path.join(REPO_ROOT, dir)));
    expect(deployed.status).toBe(201);
  }
}, 60_000);

afterAll(async () => {
  await cluster?.close();
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface CreateAnswer {
  status: number;
  retryAfter: string | null;
  body: JsonObject;
}

async function createRaw(body: JsonObject, signal?: AbortSignal): Promise<CreateAnswer> {
  const res = await fetch(`${G}/api/v1/instances`, {
    method: "POST",
    headers: { authorization: `Bearer ${CLUSTER_API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify(body),
    ...(signal ? { signal } : {}),
  });
  const text = await res.text();
  return { status: res.status, retryAfter: res.headers.get("retry-after"), body: text ? (JSON.parse(text) as JsonObject) : {} };
}

/** The instances the platform lists; undefined while the gateway cannot say (a 503 under load: asked again). */
async function listed(): Promise<Set<string> | undefined> {
  const res = await cluster.api(G, "GET", "/api/v1/instances");
  if (res.status !== 200) return undefined;
  return new Set((res.json.instances as JsonObject[]).map((i) => String(i.instance_id)));
}

/** Waits until the agent processes running under the cluster's data dirs are exactly the instances the platform lists. */
async function expectNoOrphans(): Promise<Set<string>> {
  const { value } = await until(
    async () => {
      const platform = await listed();
      const running = runningInstanceIds(dataDirs);
      const same = platform !== undefined && platform.size === running.size && [...platform].every((id) => running.has(id));
      return same ? platform : undefined;
    },
    "the running agents to be the listed instances",
    30_000,
    250,
  ).catch(async (error: unknown) => {
    throw new Error(`${String(error)}: listed ${[...((await listed()) ?? [])].join(",")}; running ${JSON.stringify(agentProcesses(dataDirs))}`);
  });
  return value;
}

const lostLines = (): string[] =>
  (cluster.gateways[0] as PodiumProcess)
    .output()
    .split("\n")
    .filter((line) => line.includes('"coordinator lost"'));

describe("a burst of creates over two coordinator processes", () => {
  it("40 at once: no coordinator declared lost, each answered 201 or 429 with Retry-After, no agent the platform does not list", async () => {
    const answers = await Promise.all(Array.from({ length: 40 }, () => createRaw({ deployment_id: "echo-ts:1.0.0" })));
    const summary = answers.map((a) => `${a.status}${a.status === 429 ? ` retry-after=${a.retryAfter}` : ""}`);
    const unexpected = answers.filter((a) => a.status !== 201 && !(a.status === 429 && /^\d+$/.test(a.retryAfter ?? "")));
    expect(unexpected).toEqual([]);
    const created = answers.filter((a) => a.status === 201);
    expect(created.length).toBeGreaterThan(0);
    expect(lostLines()).toEqual([]);
    const platform = await expectNoOrphans();
    for (const a of created) expect(platform.has(String(a.body.instance_id))).toBe(true);
    console.log(`burst of 40 creates: ${created.length} created, ${answers.length - created.length} refused (${[...new Set(summary)].join(", ")})`);
    await Promise.all([...platform].map((id) => cluster.api(G, "DELETE", `/api/v1/instances/${id}?grace_ms=0`)));
    await expectNoOrphans();
  }, 180_000);

  it("a create cancelled by its caller while the agent starts leaves no agent running (direct call and through the gateway)", async () => {
    const coordinator = cluster.coordinators[0] as PodiumProcess;
    const transport = createGrpcTransport({
      baseUrl: coordinator.url,
      interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${cluster.secret}`), next(req))],
    });
    const instances = createClient(InstanceService, transport);
    // The agent takes 6 s to load; the caller gives up after 1.5 s.
    const direct = await instances.createInstance({ deploymentId: "slow-start-ts:1.0.0", agentId: "cancelled-direct" }, { signal: AbortSignal.timeout(1500) }).then(
      () => "created",
      (error: unknown) => String(error),
    );
    expect(direct).not.toBe("created");
    const viaGateway = await createRaw({ deployment_id: "slow-start-ts:1.0.0", agent_id: "cancelled-rest" }, AbortSignal.timeout(1500)).then(
      (a) => `answered ${a.status}`,
      (error: unknown) => String(error),
    );
    expect(viaGateway).not.toMatch(/^answered 201/);
    const agentsOf = (...ids: string[]) => agentProcesses(dataDirs).filter((p) => ids.includes(p.agentId));
    // Gone soon, and still gone once the agent would have finished loading.
    await until(async () => (agentsOf("cancelled-direct", "cancelled-rest").length === 0 ? true : undefined), "the cancelled agents' processes to exit", 20_000, 100);
    await sleep(7000);
    expect(agentsOf("cancelled-direct", "cancelled-rest")).toEqual([]);
    expect((await instances.listInstances({ agentId: "cancelled-direct" })).instances).toEqual([]);
    await expectNoOrphans();
  }, 60_000);
});
