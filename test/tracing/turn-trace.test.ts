/**
 * One turn followed through every hop of a real `podium dev` (gateway -> coordinator over the Connect API ->
 * agent process): the client's W3C traceparent is honoured from REST, WebSocket (upgrade header and frame) and
 * Connect, every hop's span is a child of the one before under one trace id, and the agent's ctx.traceparent
 * names the agent's span. Also: with no exporter the client's context still reaches the agent unchanged.
 * Export to a real OTLP/HTTP endpoint, by separate gateway and coordinator processes: cluster-trace.test.ts.
 */
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { API_KEY, startDevFixture, WsClient, type DevFixture } from "../helpers/dev-fixture.js";
import { REPO_ROOT } from "../../services/coordinator/runtime-commands.js";
import { InstanceService } from "../../gen/podium/v1/instance_service_pb.js";
import { MemorySpanExporter, Tracing } from "../../services/tracing/tracing.js";
import { SpanKind, type FinishedSpan } from "../../services/tracing/tracer.js";
import type { JsonObject } from "../../services/shared/json.js";

const AGENTS = path.join(REPO_ROOT, "test/tracing/fixtures");
const TRACE = "0af7651916cd43dd8448eb211c80319c";
const CLIENT_SPAN = "b7ad6b7169203331";
const CLIENT_TRACEPARENT = `00-${TRACE}-${CLIENT_SPAN}-01`;
const AUTH = { authorization: `Bearer ${API_KEY}` };

/** The spans from `leaf` up to the root of its trace, root first, as "service: name". */
function chain(spans: FinishedSpan[], leaf: FinishedSpan): FinishedSpan[] {
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const out = [leaf];
  for (let at = leaf; at.parentSpanId && byId.has(at.parentSpanId); ) out.unshift((at = byId.get(at.parentSpanId) as FinishedSpan));
  return out;
}

const hops = (list: FinishedSpan[]) => list.map((s) => `${s.service}: ${s.name}`);

/** The trace frame the fixture agents answer with, and the turn it belongs to, once that turn is done. */
async function tracedTurn(ws: WsClient, from: number): Promise<{ turn: number; traceparent: string | null; tracestate: string | null }> {
  const frame = await ws.waitFor((f) => f.messageType === "trace" && ws.frames.indexOf(f) >= from, 30_000);
  await ws.waitFor((f) => f.messageType === "turn.done" && f.turn === frame.turn, 30_000);
  const content = frame.content as JsonObject;
  return { turn: Number(frame.turn), traceparent: content.traceparent as string | null, tracestate: content.tracestate as string | null };
}

describe("a traced turn through podium dev (in-memory exporter)", () => {
  let fixture: DevFixture;
  let exporter: MemorySpanExporter;
  let tracing: Tracing;

  beforeAll(async () => {
    exporter = new MemorySpanExporter();
    tracing = new Tracing({ exporter, intervalMs: 60_000 });
    fixture = await startDevFixture({ agentsDir: AGENTS, tracing });
  }, 60_000);

  afterAll(async () => {
    await fixture?.close();
    await tracing?.close();
  });

  async function create(deploymentId: string): Promise<string> {
    const created = await fixture.api("POST", "/api/v1/instances", { deployment_id: deploymentId });
    expect(created.status).toBe(201);
    return created.json.instance_id as string;
  }

  /** The agent's span of `turn` (after flushing), with the chain of its ancestors. */
  async function agentChain(instanceId: string, turn: number, traceId: string): Promise<FinishedSpan[]> {
    await tracing.flush();
    const agent = exporter.spans.find((s) => s.name === "agent onMessage" && s.traceId === traceId && s.attributes["podium.instance_id"] === instanceId && s.attributes["podium.turn"] === turn);
    expect(agent).toBeDefined();
    return chain(exporter.spans, agent as FinishedSpan);
  }

  it("REST: gateway request -> SendMessage call -> coordinator SendMessage -> turn -> agent, under the client's trace", async () => {
    const id = await create("trace-ts:1.0.0@local");
    const ws = await fixture.connect(id);
    const sent = await fixture.api("POST", `/api/v1/instances/${id}/messages`, { content: { text: "hi" } }, { ...AUTH, traceparent: CLIENT_TRACEPARENT, tracestate: "congo=t61rcWkgMzE" });
    expect(sent.status).toBe(202);
    const seen = await tracedTurn(ws, 0);
    expect(seen.turn).toBe(sent.json.turn);
    const spans = await agentChain(id, seen.turn, TRACE);
    expect(hops(spans)).toEqual([
      "podium-gateway: POST /api/v1/instances/{id}/messages",
      "podium-gateway: podium.v1.InstanceService/SendMessage",
      "podium-coordinator: podium.v1.InstanceService/SendMessage",
      "podium-coordinator: podium.turn",
      "podium-agent: agent onMessage",
    ]);
    const [rest, call, handled, turn, agent] = spans as [FinishedSpan, FinishedSpan, FinishedSpan, FinishedSpan, FinishedSpan];
    expect(rest.parentSpanId).toBe(CLIENT_SPAN); // the client's traceparent honoured
    expect(spans.every((s) => s.traceId === TRACE && s.traceState === "congo=t61rcWkgMzE")).toBe(true);
    expect(rest).toMatchObject({ kind: SpanKind.SERVER, attributes: { "http.request.method": "POST", "http.route": "/api/v1/instances/{id}/messages", "http.response.status_code": 202 } });
    expect(call).toMatchObject({ kind: SpanKind.CLIENT, attributes: { "rpc.service": "podium.v1.InstanceService", "rpc.method": "SendMessage", "podium.coordinator_id": "local" } });
    expect(handled).toMatchObject({
      kind: SpanKind.SERVER,
      attributes: { "rpc.service": "podium.v1.InstanceService", "rpc.method": "SendMessage", "podium.instance_id": id, "podium.turn": seen.turn },
    });
    expect(turn.attributes).toMatchObject({ "podium.instance_id": id, "podium.turn": seen.turn, "podium.deployment_id": "trace-ts:1.0.0@local" });
    expect(agent.kind).toBe(SpanKind.CONSUMER);
    // The agent's ctx.traceparent is its own span's context: its calls become that span's children.
    expect(seen).toMatchObject({ traceparent: `00-${TRACE}-${agent.spanId}-01`, tracestate: "congo=t61rcWkgMzE" });
    // Each hop's time lies within its parent's (the turn outlives the SendMessage that acknowledged it).
    for (const [parent, child] of [
      [rest, call],
      [call, handled],
      [turn, agent],
    ] as const) {
      expect(child.startMs).toBeGreaterThanOrEqual(parent.startMs);
      expect(child.endMs).toBeLessThanOrEqual(parent.endMs);
    }
    expect(turn.startMs).toBeGreaterThanOrEqual(handled.startMs);
    expect(spans.every((s) => s.status.code === 0)).toBe(true);
  }, 60_000);

  it("WebSocket: the upgrade's traceparent, or a process_message frame's own (/connect, /events), parents the turn (Python agent)", async () => {
    const id = await create("trace-py:1.0.0@local");
    const traced = await WsClient.open(`${fixture.url.replace("http", "ws")}/api/v1/instances/${id}/connect?api_key=${API_KEY}`, { traceparent: CLIENT_TRACEPARENT });
    try {
      traced.send({ type: "process_message", content: { text: "one" } });
      const first = await tracedTurn(traced, 0);
      const fromUpgrade = await agentChain(id, first.turn, TRACE);
      expect(hops(fromUpgrade)).toEqual([
        "podium-gateway: WS process_message",
        "podium-gateway: podium.v1.InstanceService/SendMessage",
        "podium-coordinator: podium.v1.InstanceService/SendMessage",
        "podium-coordinator: podium.turn",
        "podium-agent: agent onMessage",
      ]);
      expect(fromUpgrade[0]?.parentSpanId).toBe(CLIENT_SPAN);
      expect(first.traceparent).toBe(`00-${TRACE}-${fromUpgrade[4]?.spanId}-01`);
      expect(first.tracestate).toBeNull();

      const own = "11111111111111111111111111111111";
      const from = traced.frames.length;
      traced.send({ type: "process_message", content: { text: "two" }, traceparent: `00-${own}-2222222222222222-01`, tracestate: "k=v" });
      const second = await tracedTurn(traced, from);
      const fromFrame = await agentChain(id, second.turn, own);
      expect(fromFrame[0]).toMatchObject({ name: "WS process_message", parentSpanId: "2222222222222222", traceState: "k=v" });
      expect(second.traceparent).toBe(`00-${own}-${fromFrame[4]?.spanId}-01`);

      // The translator's /events socket takes the same field.
      const events = await WsClient.open(`${fixture.url.replace("http", "ws")}/api/v1/instances/${id}/events?api_key=${API_KEY}`);
      const viaEvents = "33333333333333333333333333333333";
      const before = traced.frames.length;
      events.send({ type: "process_message", content: { text: "three" }, traceparent: `00-${viaEvents}-4444444444444444-01` });
      const third = await tracedTurn(traced, before);
      events.close();
      const fromEvents = await agentChain(id, third.turn, viaEvents);
      expect(fromEvents[0]).toMatchObject({ name: "WS process_message", parentSpanId: "4444444444444444", attributes: { "http.route": "/api/v1/instances/{id}/events" } });
      expect(hops(fromEvents).slice(1, 3)).toEqual(["podium-gateway: podium.v1.InstanceService/SendMessage", "podium-coordinator: podium.v1.InstanceService/SendMessage"]);

      // A traceparent that is not a string is refused like any bad field; the socket stays open.
      traced.send({ type: "process_message", content: { text: "four" }, traceparent: 7 });
      const error = await traced.waitFor((f) => f.type === "error");
      expect(error.error).toMatchObject({ code: "invalid_argument" });
    } finally {
      traced.close();
    }
  }, 60_000);

  it("Connect: the traceparent metadata of InstanceService.SendMessage on the gateway, and a new trace without one", async () => {
    const id = await create("trace-ts:1.0.0@local");
    const ws = await fixture.connect(id);
    const client = createClient(InstanceService, createConnectTransport({ baseUrl: fixture.url, httpVersion: "1.1" }));
    const sent = await client.sendMessage({ instanceId: id, content: { text: "hi" } }, { headers: { ...AUTH, traceparent: CLIENT_TRACEPARENT } });
    const seen = await tracedTurn(ws, 0);
    expect(seen.turn).toBe(Number(sent.turn));
    const spans = await agentChain(id, seen.turn, TRACE);
    expect(spans[0]).toMatchObject({
      service: "podium-gateway",
      name: "podium.v1.InstanceService/SendMessage",
      kind: SpanKind.SERVER,
      parentSpanId: CLIENT_SPAN,
      attributes: { "rpc.system": "connect_rpc" },
    });
    expect(hops(spans).slice(1)).toEqual([
      "podium-gateway: podium.v1.InstanceService/SendMessage",
      "podium-coordinator: podium.v1.InstanceService/SendMessage",
      "podium-coordinator: podium.turn",
      "podium-agent: agent onMessage",
    ]);

    // Without a traceparent the gateway starts the trace; the agent still gets one.
    const from = ws.frames.length;
    await fixture.api("POST", `/api/v1/instances/${id}/messages`, { content: { text: "untraced" } });
    const fresh = await tracedTurn(ws, from);
    const [, traceId, spanId] = (fresh.traceparent ?? "").split("-");
    const started = await agentChain(id, fresh.turn, traceId as string);
    expect(started[0]).toMatchObject({ service: "podium-gateway", name: "POST /api/v1/instances/{id}/messages" });
    expect(started[0]?.parentSpanId).toBeUndefined();
    expect(started[4]?.spanId).toBe(spanId);
  }, 60_000);
  it("a turn cancelled by an interrupt, and one superseded before it ran, end their spans with the reason; a refused message is the caller's error", async () => {
    const id = await create("trace-ts:1.0.0@local");
    const ws = await fixture.connect(id);
    const send = (body: JsonObject) => fixture.api("POST", `/api/v1/instances/${id}/messages`, body, { ...AUTH, traceparent: CLIENT_TRACEPARENT });
    const running = await send({ content: { wait: true } });
    await ws.waitFor((f) => f.messageType === "trace" && f.turn === running.json.turn);
    const refused = await send({ content: {}, multitask_strategy: "reject" });
    expect(refused.status).toBe(409);
    const queued = await send({ content: {} });
    const interrupting = await send({ content: {}, multitask_strategy: "interrupt" });
    await ws.waitFor((f) => f.messageType === "turn.done" && f.turn === interrupting.json.turn, 30_000);
    await tracing.flush();
    const turnSpan = (turn: unknown) => exporter.spans.find((s) => s.name === "podium.turn" && s.attributes["podium.instance_id"] === id && s.attributes["podium.turn"] === turn);
    expect(turnSpan(running.json.turn)?.status).toEqual({ code: 2, message: expect.stringContaining("cancelled") });
    expect(turnSpan(queued.json.turn)?.status).toEqual({ code: 2, message: expect.stringContaining("cancelled before it ran") });
    expect(turnSpan(interrupting.json.turn)?.status).toEqual({ code: 0 });
    // Refused (ABORTED, 409): an error of the gateway's call, not of the servers that answered it correctly.
    const aborted = exporter.spans.filter((s) => s.attributes["rpc.grpc.status_code"] === 10 && s.traceId === TRACE);
    expect(aborted.map((s) => [s.service, s.kind, s.status.code]).sort()).toEqual([
      ["podium-coordinator", SpanKind.SERVER, 0],
      ["podium-gateway", SpanKind.CLIENT, 2],
    ]);
    const rest = exporter.spans.find((s) => s.spanId === aborted.find((a) => a.kind === SpanKind.CLIENT)?.parentSpanId);
    expect(rest).toMatchObject({ attributes: { "http.response.status_code": 409 }, status: { code: 0 } });
  }, 60_000);
});

describe("without an exporter: sampled traces kept in memory, GET /api/v1/traces/{trace_id}", () => {
  let fixture: DevFixture;
  beforeAll(async () => {
    fixture = await startDevFixture({ agentsDir: AGENTS });
  }, 60_000);
  afterAll(() => fixture?.close());

  it("records a turn under a sampled traceparent and serves its spans from every hop; an unsampled context passes through unchanged, none stays none", async () => {
    const created = await fixture.api("POST", "/api/v1/instances", { deployment_id: "trace-ts:1.0.0@local" });
    const id = created.json.instance_id as string;
    const ws = await fixture.connect(id);
    const sent = await fixture.api("POST", `/api/v1/instances/${id}/messages`, { content: {} }, { ...AUTH, traceparent: CLIENT_TRACEPARENT, tracestate: "a=b" });
    const seen = await tracedTurn(ws, 0);
    expect(seen.turn).toBe(sent.json.turn);
    // The turn is recorded, so the agent gets its own span's context under the client's trace.
    expect(seen.traceparent).toMatch(new RegExp(`^00-${TRACE}-[0-9a-f]{16}-01$`));
    expect(seen.traceparent).not.toBe(CLIENT_TRACEPARENT);

    // The spans end with the turn; read until the agent's is there.
    let trace: JsonObject = {};
    for (let i = 0; i < 50; i++) {
      const read = await fixture.api("GET", `/api/v1/traces/${TRACE}`, undefined, AUTH);
      trace = read.json;
      if (read.status === 200 && (trace.spans as JsonObject[]).some((s) => s.service === "podium-agent")) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const spans = trace.spans as JsonObject[];
    expect(spans.map((s) => `${String(s.service)}: ${String(s.name)}`)).toEqual([
      "podium-gateway: POST /api/v1/instances/{id}/messages",
      "podium-gateway: podium.v1.InstanceService/SendMessage",
      "podium-coordinator: podium.v1.InstanceService/SendMessage",
      "podium-coordinator: podium.turn",
      "podium-agent: agent onMessage",
    ]);
    expect(trace.unreachable).toEqual([]);
    expect(spans[0]).toMatchObject({ trace_id: TRACE, parent_span_id: CLIENT_SPAN, kind: "SERVER", status: { code: "UNSET" }, attributes: { "http.response.status_code": 202 } });
    for (let i = 1; i < spans.length; i++) expect((spans[i] as JsonObject).parent_span_id).toBe((spans[i - 1] as JsonObject).span_id);
    const agent = spans[4] as JsonObject;
    expect(agent).toMatchObject({ kind: "CONSUMER", attributes: { "podium.instance_id": id, "podium.turn": seen.turn } });
    expect(seen.traceparent).toBe(`00-${TRACE}-${String(agent.span_id)}-01`);
    for (const span of spans) {
      expect(typeof span.duration_ms).toBe("number");
      expect(span.duration_ms as number).toBeGreaterThanOrEqual(0);
      expect(Date.parse(span.start_time as string)).toBeGreaterThan(0);
    }

    // Same key rules as the rest of /api/v1; a malformed id is a 400; a trace nobody kept a 404.
    expect((await fetch(`${fixture.url}/api/v1/traces/${TRACE}`)).status).toBe(401);
    expect((await fixture.api("GET", "/api/v1/traces/not-a-trace", undefined, AUTH)).status).toBe(400);

    // Unsampled: passed to the agent as is, nothing recorded.
    const unsampledTrace = "4bf92f3577b34da6a3ce929d0e0e4736";
    const unsampled = `00-${unsampledTrace}-00f067aa0ba902b7-00`;
    let from = ws.frames.length;
    await fixture.api("POST", `/api/v1/instances/${id}/messages`, { content: {} }, { ...AUTH, traceparent: unsampled, tracestate: "a=b" });
    expect(await tracedTurn(ws, from)).toMatchObject({ traceparent: unsampled, tracestate: "a=b" });
    expect((await fixture.api("GET", `/api/v1/traces/${unsampledTrace}`, undefined, AUTH)).status).toBe(404);

    from = ws.frames.length;
    await fixture.api("POST", `/api/v1/instances/${id}/messages`, { content: {} });
    expect(await tracedTurn(ws, from)).toMatchObject({ traceparent: null, tracestate: null });
  }, 60_000);
});
