/**
 * The cluster path with real processes: redis-server, s3rver, one `podium coordinator` and one
 * `podium gateway` (separate OS processes, as in production). Measures
 *   - placement: POST /api/v1/instances -> 201 (gateway places via Valkey, coordinator starts the agent);
 *   - WebSocket round trip client -> gateway -> coordinator -> agent -> back, beside a raw `ws` echo
 *     server doing the same exchange in the same run;
 *   - updates/s streamed agent -> coordinator -> gateway -> client, beside the raw `ws` server.
 */
import path from "node:path";
import { performance } from "node:perf_hooks";
import { type WebSocket, WebSocketServer } from "ws";
import { packBundle } from "../services/registry/bundle-archive.js";
import { REPO_ROOT } from "../services/coordinator/runtime-commands.js";
import { grpcCoordinatorConnector } from "../services/cluster/grpc-coordinator-connector.js";
import type { CoordinatorClients } from "../services/gateway/coordinator-directory.js";
import { startCluster, type TestCluster } from "../test/helpers/cluster-processes.js";
import { exchange, openWebSocket } from "./ws-exchange.js";
import { percentile, printTable, summarize, type BenchResults } from "./bench-util.js";

export interface ClusterBenchOptions {
  placements?: number;
  roundTrips?: number;
  /** Unsampled round trips after the first `roundTrips` (the JIT's warm-up), then `compiledRoundTrips` sampled. */
  compileRoundTrips?: number;
  compiledRoundTrips?: number;
  updates?: number;
  /** More environment for the podium processes (e.g. NODE_OPTIONS for profiling). */
  env?: Record<string, string>;
}

/** A raw `ws` server answering like the flood agent: n stream_update frames, then stream_end. */
async function rawEchoServer(): Promise<{ url: string; close(): Promise<void> }> {
  const server = new WebSocketServer({ port: 0, host: "127.0.0.1" });
  server.on("connection", (socket) =>
    socket.on("message", (data) => {
      const frame = JSON.parse(data.toString()) as { content?: { n?: number; text?: string } };
      const n = frame.content?.n ?? 1;
      for (let i = 0; i < n; i++) socket.send(JSON.stringify({ messageType: "stream_update", content: { text: frame.content?.text ?? "x", i }, seq: i }));
      socket.send(JSON.stringify({ messageType: "stream_end" }));
    }),
  );
  await new Promise((resolve) => server.once("listening", resolve));
  const { port } = server.address() as { port: number };
  return { url: `ws://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

interface PlacementSamples {
  gateway: number[];
  direct: number[];
  agentStart: number[];
}

/**
 * POST /api/v1/instances through the gateway, alternating with CreateInstance called directly on the
 * coordinator (gRPC with the cluster secret): the difference is what the gateway adds (auth, placement,
 * the extra hop, the Valkey write). Each instance is stopped before the next, so load stays constant.
 */
async function placementLatency(cluster: TestCluster, gateway: string, coordinator: CoordinatorClients, count: number): Promise<PlacementSamples> {
  const samples: PlacementSamples = { gateway: [], direct: [], agentStart: [] };
  for (let i = 0; i < count + 3; i++) {
    let start = performance.now();
    const res = await cluster.api(gateway, "POST", "/api/v1/instances", { deployment_id: "flood-ts:1.0.0" });
    const viaGateway = performance.now() - start;
    if (res.status !== 201) throw new Error(`create failed: ${res.status} ${JSON.stringify(res.json)}`);
    await cluster.api(gateway, "DELETE", `/api/v1/instances/${String(res.json.instance_id)}?grace_ms=0`);
    start = performance.now();
    const { instance } = await coordinator.instances.createInstance({ deploymentId: "flood-ts:1.0.0" });
    const direct = performance.now() - start;
    await coordinator.instances.stopInstance({ instanceId: instance?.instanceId ?? "", graceMs: 0 });
    if (i < 3) continue; // warm-up
    samples.gateway.push(viaGateway);
    samples.direct.push(direct);
    // A warm create of a bundle that already started here is answered while the agent loads (`starting`, no ready_at yet).
    if (typeof res.json.ready_at === "string") samples.agentStart.push(Date.parse(res.json.ready_at) - Date.parse(String(res.json.created_at)));
  }
  return samples;
}

/** Round trips straight to the coordinator (SendMessage on the message stream a gateway uses, then stream_end on StreamUpdates): no gateway. */
async function directRoundTrips(coordinator: CoordinatorClients, count: number): Promise<number[]> {
  const { instance } = await coordinator.instances.createInstance({ deploymentId: "flood-ts:1.0.0" });
  const instanceId = instance?.instanceId ?? "";
  const stop = new AbortController();
  let onEnd: (() => void) | undefined;
  const consuming = (async () => {
    // From the first update: a live-only stream opened while the first message is on its way could miss its stream_end.
    for await (const res of coordinator.instances.streamUpdates({ instanceId, replayAll: true }, { signal: stop.signal })) {
      if (res.updates.some((u) => u.messageType === "stream_end")) onEnd?.();
    }
  })().catch(() => undefined);
  const samples: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const start = performance.now();
      const ended = new Promise<void>((resolve) => (onEnd = resolve));
      await coordinator.sendMessage({ instanceId, content: { text: "ping" } });
      await ended;
      samples.push(performance.now() - start);
    }
  } finally {
    stop.abort();
    await consuming;
    await coordinator.instances.stopInstance({ instanceId, graceMs: 0 });
  }
  return samples;
}

export async function runClusterBench(options: ClusterBenchOptions = {}): Promise<BenchResults> {
  const placements = options.placements ?? 30;
  const roundTrips = options.roundTrips ?? 300;
  const compileRoundTrips = options.compileRoundTrips ?? 3000;
  const compiledRoundTrips = options.compiledRoundTrips ?? 1000;
  const updates = options.updates ?? 50_000;
  const raw = await rawEchoServer();
  const cluster = await startCluster({ coordinators: 1, gateways: 1, ...(options.env ? { env: options.env } : {}) });
  const gateway = (cluster.gateways[0] as { url: string }).url;
  const isEnd = (data: string): boolean => data.includes('"stream_end"');
  const isUpdate = (data: string): boolean => data.includes('"stream_update"');
  const coordinator = grpcCoordinatorConnector({
    interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${cluster.secret}`), next(req))],
  })({ coordinatorId: "bench", address: (cluster.coordinators[0] as { url: string }).url });
  try {
    const deployed = await cluster.api(gateway, "POST", "/api/v1/deployments", await packBundle(path.join(REPO_ROOT, "test/fixtures/bundles/flood-ts")));
    if (deployed.status >= 300) throw new Error(`deploy failed: ${deployed.status} ${JSON.stringify(deployed.json)}`);
    const placement = await placementLatency(cluster, gateway, coordinator, placements);

    const created = await cluster.api(gateway, "POST", "/api/v1/instances", { deployment_id: "flood-ts:1.0.0" });
    const podiumWs = await openWebSocket(`${gateway.replace("http", "ws")}/api/v1/instances/${String(created.json.instance_id)}/connect?api_key=${cluster.apiKey}`);
    const rawWs = await openWebSocket(raw.url);
    const ping = JSON.stringify({ type: "process_message", content: { text: "ping" } });
    // Alternating samples, so a load spike on the host hits both sides alike.
    const rawSamples: number[] = [];
    const podiumSamples: number[] = [];
    for (let i = 0; i < roundTrips; i++) {
      for (const [ws, samples] of [
        [rawWs, rawSamples],
        [podiumWs, podiumSamples],
      ] as const) {
        const start = performance.now();
        await exchange(ws, ping, 1, isEnd);
        samples.push(performance.now() - start);
      }
    }
    const warm = Math.floor(roundTrips / 10);
    const rawRtt = summarize(rawSamples.slice(warm));
    const podiumRtt = summarize(podiumSamples.slice(warm));
    const directRtt = summarize((await directRoundTrips(coordinator, roundTrips)).slice(warm));
    // The same once the processes' code is compiled: V8 optimizes the hot path of the gateway, the coordinator
    // and this client over the first few thousand round trips (stream-bench measures `podium dev` the same way),
    // as in a cluster that has been up a while. Unsampled until then.
    for (let i = 0; i < compileRoundTrips; i++) await exchange(podiumWs, ping, 1, isEnd);
    const compiledSamples: number[] = [];
    for (let i = 0; i < compiledRoundTrips; i++) {
      const start = performance.now();
      await exchange(podiumWs, ping, 1, isEnd);
      compiledSamples.push(performance.now() - start);
    }
    const compiledRtt = summarize(compiledSamples);
    // A new instance (its agent fresh, the coordinator's path compiled): its first 10 % unsampled, as above.
    const directCompiledRtt = summarize((await directRoundTrips(coordinator, compiledRoundTrips)).slice(Math.floor(compiledRoundTrips / 10)));
    const flood = async (ws: WebSocket): Promise<number> => {
      const start = performance.now();
      await exchange(ws, JSON.stringify({ type: "process_message", content: { n: updates } }), updates, isUpdate);
      return updates / ((performance.now() - start) / 1000);
    };
    await flood(podiumWs); // warm-up (JIT, SQLite pages)
    // Median of three alternating runs each: the host's other load moves single runs a lot.
    const rawRates: number[] = [];
    const podiumRates: number[] = [];
    for (let i = 0; i < 3; i++) {
      rawRates.push(await flood(rawWs));
      podiumRates.push(await flood(podiumWs));
    }
    const rawRate = percentile(rawRates, 50);
    const podiumRate = percentile(podiumRates, 50);
    podiumWs.close();
    rawWs.close();
    const viaGateway = summarize(placement.gateway);
    const direct = summarize(placement.direct);
    return {
      "placement: create -> 201 through the gateway p50 ms": viaGateway.p50,
      "placement: create -> 201 through the gateway p95 ms": viaGateway.p95,
      "create directly on the coordinator p50 ms": direct.p50,
      "gateway share of create p50 ms (auth, placement, hop, Valkey)": viaGateway.p50 - direct.p50,
      ...(placement.agentStart.length > 0 ? { "agent process start of creates answered ready (created_at -> ready_at) p50 ms": summarize(placement.agentStart).p50 } : {}),
      "raw ws round trip p50 ms": rawRtt.p50,
      "cluster round trip p50 ms (gateway -> coordinator -> agent)": podiumRtt.p50,
      "cluster round trip p95 ms": podiumRtt.p95,
      "round trip ratio (cluster / raw; goal <= 2)": podiumRtt.p50 / rawRtt.p50,
      "  same round trip straight to the coordinator (gRPC, the gateway's message stream) p50 ms": directRtt.p50,
      [`cluster round trip p50 ms after ${compileRoundTrips} more (compiled)`]: compiledRtt.p50,
      [`cluster round trip p99 ms after ${compileRoundTrips} more (compiled)`]: compiledRtt.p99,
      [`  straight to the coordinator p50 ms after ${compileRoundTrips} more (compiled)`]: directCompiledRtt.p50,
      "raw ws updates/s": rawRate,
      "cluster updates/s through the gateway (goal >= 50000)": podiumRate,
    };
  } finally {
    await coordinator.close?.();
    await cluster.close();
    await raw.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  printTable("cluster: gateway and coordinator as separate processes", await runClusterBench());
}
