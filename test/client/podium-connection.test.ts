import { describe, it, expect, beforeAll, afterAll, beforeEach } from "@jest/globals";
import type { WebSocket } from "ws";
import { PodiumClient, parsePodiumEvent, type PodiumEvent } from "../../packages/client/src/index.js";
import { FakeUpstream, refusedUrl } from "./fake-upstream.js";

async function collect(events: AsyncIterable<PodiumEvent>): Promise<PodiumEvent[]> {
  const out: PodiumEvent[] = [];
  for await (const event of events) out.push(event);
  return out;
}

describe("PodiumClient.connect (real WebSocket)", () => {
  let upstream: FakeUpstream;
  let client: PodiumClient;
  let server: WebSocket | undefined;
  let received: string[];

  beforeAll(async () => {
    upstream = await FakeUpstream.start();
  });
  afterAll(async () => {
    await client.close();
    await upstream.close();
  });
  beforeEach(async () => {
    await client?.close();
    client = new PodiumClient({ url: upstream.url, apiKey: "k" }, {});
    upstream.rejectUpgrade = undefined;
    upstream.upgrades.length = 0;
    received = [];
    server = undefined;
    upstream.onConnection = (ws) => {
      server = ws;
      ws.on("message", (data) => received.push(data.toString()));
    };
  });

  it("connects to /api/v1/instances/{id}/connect with the bearer key", async () => {
    const connection = await client.connect("inst-1");
    expect(connection.instanceId).toBe("inst-1");
    expect(upstream.upgrades[0]?.url).toBe("/api/v1/instances/inst-1/connect");
    expect(upstream.upgrades[0]?.headers.authorization).toBe("Bearer k");
    await connection.close();
  });

  it("asks for a replay with ?after_seq=N", async () => {
    const connection = await client.connect("inst 1", { afterSeq: 0 });
    expect(upstream.upgrades[0]?.url).toBe("/api/v1/instances/inst%201/connect?after_seq=0");
    await connection.close();
    await expect(client.connect("inst-1", { afterSeq: -1 })).rejects.toThrow(RangeError);
  });

  it("sendMessage sends exactly the process_message envelope; sendRaw sends as is", async () => {
    const connection = await client.connect("inst-1");
    await connection.sendMessage("Fix the authentication bug in auth.ts");
    await connection.sendMessage("again", { files: ["auth.ts"], priority: 2 });
    await connection.sendRaw('{"type":"cancel"}');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(received).toEqual([
      '{"type":"process_message","content":{"text":"Fix the authentication bug in auth.ts"}}',
      '{"type":"process_message","content":{"text":"again","files":["auth.ts"],"priority":2}}',
      '{"type":"cancel"}',
    ]);
    await connection.close();
  });

  it("streams events in order, drops frames that are not events, and ends on a normal close", async () => {
    const connection = await client.connect("inst-1");
    const ws = server as WebSocket;
    ws.send(JSON.stringify({ messageType: "stream_start", agentId: "a-1", instanceId: "inst-1", seq: "3", timestamp: "2025-01-01T00:00:00Z" }));
    ws.send("not json");
    ws.send(JSON.stringify({ content: { text: "no type" } }));
    ws.send(JSON.stringify({ messageType: "stream_update", content: { text: "hi" }, seq: 4, timestamp: 1735689600000 }));
    ws.send(Buffer.from([1, 2, 3]), { binary: true });
    ws.close(1000, "instance ended");
    expect(await collect(connection.events)).toEqual([
      { messageType: "stream_start", agentId: "a-1", seq: 3, timestamp: "2025-01-01T00:00:00Z" },
      { messageType: "stream_update", content: { text: "hi" }, seq: 4, timestamp: "2025-01-01T00:00:00.000Z" },
    ]);
    await expect(connection.sendMessage("late")).rejects.toMatchObject({ kind: "closed" });
  });

  it("delivers a burst larger than the buffer, in order (backpressure pause/resume)", async () => {
    const connection = await client.connect("inst-1");
    const ws = server as WebSocket;
    const n = 3000;
    for (let i = 1; i <= n; i++) ws.send(JSON.stringify({ messageType: "stream_update", content: { text: String(i) }, seq: i }));
    ws.close(1000);
    let expected = 1;
    for await (const event of connection.events) {
      expect(event.seq).toBe(expected++);
      if (expected % 500 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(expected).toBe(n + 1);
  });

  it("ends the events with a PodiumConnectionError when the socket drops", async () => {
    const connection = await client.connect("inst-1");
    const ws = server as WebSocket;
    ws.send(JSON.stringify({ messageType: "stream_start" }));
    setTimeout(() => ws.terminate(), 20);
    const seen: string[] = [];
    await expect(
      (async () => {
        for await (const event of connection.events) seen.push(event.messageType);
      })(),
    ).rejects.toMatchObject({ name: "PodiumConnectionError", kind: "closed" });
    expect(seen).toEqual(["stream_start"]);
  });

  it("close() ends the event stream and is idempotent; events iterate once", async () => {
    const connection = await client.connect("inst-1");
    const reading = collect(connection.events);
    await connection.close();
    await connection.close();
    await expect(reading).resolves.toEqual([]);
    expect(() => connection.events[Symbol.asyncIterator]()).toThrow(TypeError);
  });

  it("aborting the signal after connecting closes the connection", async () => {
    const controller = new AbortController();
    const connection = await client.connect("inst-1", { signal: controller.signal });
    const reading = collect(connection.events);
    controller.abort();
    await expect(reading).resolves.toEqual([]);
  });

  it("client.close() closes open connections", async () => {
    const connection = await client.connect("inst-1");
    const reading = collect(connection.events);
    await client.close();
    await expect(reading).resolves.toEqual([]);
    await expect(connection.sendRaw("x")).rejects.toMatchObject({ kind: "closed" });
  });

  it("a refused upgrade fails with the server's status and error code", async () => {
    upstream.rejectUpgrade = { status: 404, body: { error: { code: "not_found", message: "instance inst-x not found" } } };
    await expect(client.connect("inst-x")).rejects.toMatchObject({ kind: "http", status: 404, code: "not_found" });
  });

  it("a port that refuses fails with a network error", async () => {
    const c = new PodiumClient({ url: await refusedUrl() }, {});
    await expect(c.connect("inst-1")).rejects.toMatchObject({ kind: "network" });
    await c.close();
  });

  it("an already-aborted signal fails at once", async () => {
    await expect(client.connect("inst-1", { signal: AbortSignal.abort() })).rejects.toMatchObject({ kind: "aborted" });
    expect(upstream.upgrades).toHaveLength(0);
  });
});

describe("parsePodiumEvent", () => {
  it.each([
    ['{"messageType":"x"}', { messageType: "x" }],
    ['{"messageType":"x","content":[1],"agentId":"","seq":-1,"timestamp":"nope"}', { messageType: "x" }],
    ['{"messageType":""}', undefined],
    ['{"type":"error","error":{"code":"failed_precondition","message":"instance is stopping"}}', { messageType: "error", content: { message: "instance is stopping", code: "failed_precondition" } }],
    ['{"type":"error","error":{}}', { messageType: "error", content: { message: "gateway error" } }],
    ['{"type":"error"}', undefined],
    ["[]", undefined],
    ["", undefined],
  ])("%s", (text, expected) => {
    expect(parsePodiumEvent(text)).toEqual(expected);
  });
});
