/**
 * WebSocket round trip (client -> gateway -> coordinator -> agent -> back) and updates/s streamed
 * through the gateway, each beside two baselines in the same run: a raw `ws` server answering itself, and
 * the same topology as Podium's without Podium (ws server -> bare Bun runner over pipes -> back). CPU per
 * round trip is measured twice: with the client in this process (server + client), and with the client in a
 * process of its own, which leaves the platform's CPU per turn alone (#17's goal of 0.3 ms).
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { type WebSocket, WebSocketServer } from "ws";
import { createDevServer } from "../services/dev/create-dev-server.js";
import { REPO_ROOT } from "../services/coordinator/runtime-commands.js";
import { silentLogger } from "../services/shared/logger.js";
import { exchange, openWebSocket } from "./ws-exchange.js";
import { startRunnerTopology } from "./runner-topology.js";
import { printTable, summarize, type BenchResults } from "./bench-util.js";

/** Clients of one instance in the fan-out measurement. */
const FAN_OUT = 4;
/** Round trips before the "compiled" platform CPU measurement (each agent has had ~2,000 before it). */
const WARM_TURNS = 5000;

/**
 * Round trips from a client in its own process (round-trip-client.ts): this process's CPU meanwhile is the
 * server's alone (for Podium: gateway, coordinator, their threads; not the agent's).
 */
async function remoteRtt(url: string, roundTrips: number, warmup = Math.floor(roundTrips / 10)): Promise<{ p50: number; p99: number; serverCpuMs: number }> {
  const client = spawn(process.execPath, ["--import", "tsx", path.join(path.dirname(new URL(import.meta.url).pathname), "round-trip-client.ts")], {
    env: { ...process.env, PODIUM_BENCH_URL: url, PODIUM_BENCH_ROUND_TRIPS: String(roundTrips), PODIUM_BENCH_WARMUP: String(warmup) },
    stdio: ["pipe", "pipe", "inherit"],
  });
  let output = "";
  let started = false;
  let cpu = process.cpuUsage();
  const done = new Promise<number[]>((resolve, reject) => {
    client.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      if (!started && output.startsWith("ready\n")) {
        started = true;
        output = output.slice("ready\n".length);
        cpu = process.cpuUsage();
        client.stdin.write("go\n");
      }
      if (output.endsWith("]\n")) resolve(JSON.parse(output) as number[]);
    });
    client.once("exit", (code) => reject(new Error(`round-trip client exited with ${code}`)));
  });
  const samples = await done;
  const used = process.cpuUsage(cpu);
  client.stdin.end();
  const summary = summarize(samples);
  return { p50: summary.p50, p99: summary.p99, serverCpuMs: (used.user + used.system) / 1000 / samples.length };
}

/**
 * FAN_OUT clients of one instance in a process of their own (fan-out-client.ts), one of which starts the
 * flood: updates/s delivered, with this process doing the server's work only.
 */
async function remoteFanOut(url: string, updates: number): Promise<number> {
  const client = spawn(process.execPath, ["--import", "tsx", path.join(path.dirname(new URL(import.meta.url).pathname), "fan-out-client.ts")], {
    env: { ...process.env, PODIUM_BENCH_URL: url, PODIUM_BENCH_CLIENTS: String(FAN_OUT), PODIUM_BENCH_UPDATES: String(updates) },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let output = "";
  const elapsedMs = await new Promise<number>((resolve, reject) => {
    client.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      if (output.endsWith("\n")) resolve(Number(output));
    });
    client.once("exit", (code) => reject(new Error(`fan-out client exited with ${code}`)));
  });
  return (FAN_OUT * updates) / (elapsedMs / 1000);
}

export async function runStreamBench(roundTrips = 1000, updates = 50_000): Promise<BenchResults> {
  const raw = new WebSocketServer({ port: 0, host: "127.0.0.1" });
  raw.on("connection", (socket) =>
    socket.on("message", (data) => {
      const msg = JSON.parse(data.toString()) as { n?: number };
      const n = msg.n ?? 1;
      for (let i = 0; i < n; i++) socket.send(JSON.stringify({ messageType: "stream_update", content: { text: "x", i }, seq: i }));
      socket.send(JSON.stringify({ messageType: "stream_end" }));
    }),
  );
  await new Promise((r) => raw.once("listening", r));
  const rawPort = (raw.address() as { port: number }).port;
  const topology = await startRunnerTopology();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-bench-"));
  // No warm runners: their refill after the first create would run during the measurement.
  const server = await createDevServer({ port: 0, dataDir: dir, agentsDir: path.join(REPO_ROOT, "test/fixtures/bundles"), logger: silentLogger, coordinator: { warmRunners: 0 } });
  const isEnd = (data: string) => data.includes('"stream_end"');
  const isUpdate = (data: string) => data.includes('"stream_update"');
  try {
    const connectUrl = (id: string) => `${server.url.replace("http", "ws")}/api/v1/instances/${id}/connect`;
    const ids: string[] = [];
    const open = async (deploymentId: string) => {
      const res = await fetch(`${server.url}/api/v1/instances`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ deployment_id: deploymentId }) });
      const { instance_id: id } = (await res.json()) as { instance_id: string };
      ids.push(id);
      return openWebSocket(connectUrl(id));
    };
    const podiumWs = await open("flood-ts:1.0.0");
    const pythonWs = await open("flood-py:1.0.0");
    const rawWs = await openWebSocket(`ws://127.0.0.1:${rawPort}`);
    const topologyWs = await openWebSocket(topology.url);
    const message = JSON.stringify({ type: "process_message", content: { text: "ping" } });
    // CPU of this process (server and bench client) per round trip; the agent's and runner's own CPU is not in it.
    const rtt = async (ws: WebSocket) => {
      const samples: number[] = [];
      let cpu = process.cpuUsage();
      for (let i = 0; i < roundTrips; i++) {
        if (i === Math.floor(roundTrips / 10)) cpu = process.cpuUsage();
        const start = performance.now();
        await exchange(ws, message, 1, isEnd);
        samples.push(performance.now() - start);
      }
      const used = process.cpuUsage(cpu);
      const measured = samples.slice(Math.floor(roundTrips / 10));
      return { ...summarize(measured), cpuMs: (used.user + used.system) / 1000 / measured.length };
    };
    const rawRtt = await rtt(rawWs);
    const topologyRtt = await rtt(topologyWs);
    const podiumRtt = await rtt(podiumWs);
    const pythonRtt = await rtt(pythonWs);
    const [floodTsId = "", floodPyId = ""] = ids;
    const topologyServer = await remoteRtt(topology.url, roundTrips);
    const podiumServer = await remoteRtt(connectUrl(floodTsId), roundTrips);
    const pythonServer = await remoteRtt(connectUrl(floodPyId), roundTrips);
    // The same once the server's code is compiled (V8 optimizes the hot path over the first few thousand
    // turns, on its own threads: ~0.1 ms of CPU per turn until then), as in a server that has been up a while.
    const warm = WARM_TURNS;
    const topologyWarm = await remoteRtt(topology.url, roundTrips, warm);
    const podiumWarm = await remoteRtt(connectUrl(floodTsId), roundTrips, warm);
    const pythonWarm = await remoteRtt(connectUrl(floodPyId), roundTrips, warm);
    const flood = async (ws: WebSocket) => {
      const start = performance.now();
      await exchange(ws, JSON.stringify({ type: "process_message", content: { n: updates }, n: updates }), updates, isUpdate);
      return updates / ((performance.now() - start) / 1000);
    };
    const rawRate = await flood(rawWs);
    const topologyRate = await flood(topologyWs);
    const podiumRate = await flood(podiumWs);
    const pythonRate = await flood(pythonWs);
    // One agent's flood fanned out to FAN_OUT clients of the same instance (all in this process, so the
    // clients' own frame handling is in the measurement too), one of them starting it. The round-trip
    // client closes first: it would be one more client.
    podiumWs.close();
    const fanOutSockets = await Promise.all(Array.from({ length: FAN_OUT }, () => openWebSocket(connectUrl(floodTsId))));
    const fanOutStart = performance.now();
    const allReceived = fanOutSockets.map(
      (ws) =>
        new Promise<void>((resolve, reject) => {
          let seen = 0;
          ws.on("message", (data: Buffer) => {
            if (isUpdate(data.toString()) && ++seen === updates) resolve();
          });
          ws.on("close", (code) => reject(new Error(`a fan-out client was closed (${code}) after ${seen} of ${updates} updates`)));
        }),
    );
    fanOutSockets[0]?.send(JSON.stringify({ type: "process_message", content: { n: updates } }));
    await Promise.all(allReceived);
    const fanOutRate = (FAN_OUT * updates) / ((performance.now() - fanOutStart) / 1000);
    for (const ws of fanOutSockets) ws.close();
    const remoteFanOutRate = await remoteFanOut(connectUrl(floodTsId), updates);
    pythonWs.close();
    rawWs.close();
    topologyWs.close();
    return {
      "raw ws round trip p50 ms": rawRtt.p50,
      "ws -> server -> bare runner round trip p50 ms": topologyRtt.p50,
      "ws -> server -> bare runner round trip p99 ms": topologyRtt.p99,
      "podium round trip p50 ms": podiumRtt.p50,
      "podium round trip p99 ms": podiumRtt.p99,
      "round trip ratio (podium / bare runner topology, p50)": podiumRtt.p50 / topologyRtt.p50,
      "bare runner topology: CPU ms per round trip (server + client)": topologyRtt.cpuMs,
      "podium: CPU ms per round trip (server + client)": podiumRtt.cpuMs,
      "bare runner topology: server CPU ms per round trip (client in its own process)": topologyServer.serverCpuMs,
      "podium: platform CPU ms per turn (server process; client in its own process)": podiumServer.serverCpuMs,
      "podium: platform CPU ms per turn, Python agent": pythonServer.serverCpuMs,
      [`bare runner topology: server CPU ms per round trip after ${WARM_TURNS} more`]: topologyWarm.serverCpuMs,
      [`podium: platform CPU ms per turn after ${WARM_TURNS} more turns (compiled)`]: podiumWarm.serverCpuMs,
      [`podium: platform CPU ms per turn after ${WARM_TURNS} more turns, Python agent`]: pythonWarm.serverCpuMs,
      [`podium round trip p50 ms after ${WARM_TURNS} more turns`]: podiumWarm.p50,
      [`podium round trip p99 ms after ${WARM_TURNS} more turns`]: podiumWarm.p99,
      [`podium round trip p50 ms after ${WARM_TURNS} more turns, Python agent`]: pythonWarm.p50,
      [`podium round trip p99 ms after ${WARM_TURNS} more turns, Python agent`]: pythonWarm.p99,
      "podium round trip p50 ms, client in its own process": podiumServer.p50,
      "podium round trip p99 ms, client in its own process": podiumServer.p99,
      "podium round trip p50 ms, Python agent": pythonRtt.p50,
      "podium round trip p99 ms, Python agent": pythonRtt.p99,
      "raw ws updates/s": rawRate,
      "ws -> server -> bare runner updates/s": topologyRate,
      "podium updates/s (agent -> gateway -> client, persisted)": podiumRate,
      "updates/s ratio (podium / bare runner topology)": podiumRate / topologyRate,
      "podium updates/s, Python agent": pythonRate,
      [`podium updates/s delivered, one agent fanned out to ${FAN_OUT} clients`]: fanOutRate,
      [`  the same, the ${FAN_OUT} clients in a process of their own`]: remoteFanOutRate,
    };
  } finally {
    await server.close();
    await topology.close();
    await new Promise((r) => raw.close(r));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  printTable("streaming through the gateway", await runStreamBench());
}
