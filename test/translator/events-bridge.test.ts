/**
 * The browser bridge `/api/v1/instances/{id}/events` against a real dev server: client events with
 * a gap-free per-session seq, client messages (process_message, answer, cancel) and the file
 * messages answered by correlated reply frames, resumption with after_seq / session_seq.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { create } from "@bufbuild/protobuf";
import { TranslatorService } from "../../gen/podium/v1/translator_service_pb.js";
import { StreamUpdateSchema } from "../../gen/podium/v1/stream_update_pb.js";
import { API_KEY, WsClient, startDevFixture, type DevFixture } from "../helpers/dev-fixture.js";
import type { JsonObject } from "../../services/shared/json.js";

let fixture: DevFixture;
let instanceId: string;
const sockets: WsClient[] = [];

async function bridge(id: string, query = ""): Promise<WsClient> {
  const socket = await WsClient.open(`${fixture.url.replace("http", "ws")}/api/v1/instances/${id}/events?api_key=${API_KEY}${query ? `&${query}` : ""}`);
  sockets.push(socket);
  return socket;
}

const events = (socket: WsClient) => socket.frames.filter((f) => typeof f.seq === "number");
const reply = (socket: WsClient, id: string | number) => socket.waitFor((f) => f.id === id && (f.type === "reply" || f.type === "error"));
const data = (frame: JsonObject) => frame.data as JsonObject;

beforeAll(async () => {
  fixture = await startDevFixture();
  const created = await fixture.api("POST", "/api/v1/instances", { deployment_id: "acp-ts:1.0.0@local" });
  expect(created.status).toBe(201);
  instanceId = created.json.instance_id as string;
}, 60_000);

afterAll(async () => {
  for (const s of sockets) s.close();
  await fixture?.close();
});

describe("client event bridge over WebSocket", () => {
  let first: WsClient;

  it("translates a turn into client events numbered 1..n and acknowledges process_message", async () => {
    first = await bridge(instanceId);
    first.send({ type: "process_message", id: "m1", content: { text: "hello" } });
    const ack = await reply(first, "m1");
    expect(ack).toMatchObject({ type: "reply", id: "m1", request: "process_message", result: { queue_position: 0 } });
    await first.waitFor((f) => f.type === "turn_complete");
    const got = events(first);
    expect(got.map((e) => e.seq)).toEqual(got.map((_, i) => i + 1));
    expect(got.map((e) => e.type)).toEqual([
      "thinking_start",
      "thinking_progress",
      "thinking_complete",
      "tool_call_start",
      "tool_call",
      "tool_result",
      "usage_context",
      "usage_update",
      "text_delta",
      "text_delta",
      "turn_complete",
    ]);
    for (const e of got) {
      expect(e).toMatchObject({ sessionId: instanceId, instanceId, agentId: expect.any(String), timestamp: expect.stringMatching(/\.\d{3}Z$/) });
    }
    expect(data(got[4] as JsonObject)).toEqual({ tool_call_id: "call-1", name: "read_file", args: { path: "notes.txt" } });
    expect(
      got
        .filter((e) => e.type === "text_delta")
        .map((e) => data(e).text)
        .join(""),
    ).toBe("echo: hello (cwd none)");
    const updateSeqs = got.map((e) => e.updateSeq as number);
    expect([...updateSeqs].sort((a, b) => a - b)).toEqual(updateSeqs);
  });

  it("relays answers to permission requests and cancels turns", async () => {
    first.send({ type: "process_message", content: { text: "permission" } });
    const asked = await first.waitFor((f) => f.type === "permission_requested");
    expect(data(asked)).toMatchObject({ tool_call_id: "perm-1", name: "bash", description: "Run ls", args: { cmd: "ls" } });
    first.send({ type: "answer", id: "a1", request_id: data(asked).request_id, value: { approved: true } });
    expect(await reply(first, "a1")).toMatchObject({ type: "reply", request: "answer", result: { request_id: data(asked).request_id } });
    await first.waitFor((f) => f.type === "text_delta" && data(f).text === 'permission:{"approved":true}');
    expect(events(first).some((e) => e.type === "approval_resolved" && data(e).request_id === data(asked).request_id)).toBe(true);

    first.send({ type: "process_message", content: { text: "slow" } });
    await first.waitFor((f) => f.type === "text_delta" && data(f).text === "1 ");
    first.send({ type: "cancel", id: "c1" });
    expect(await reply(first, "c1")).toMatchObject({ type: "reply", request: "cancel", result: { cancelled: true } });
    await first.waitFor((f) => f.type === "text_delta" && data(f).text === "stopped");
    const got = events(first);
    expect(got.map((e) => e.seq)).toEqual(got.map((_, i) => i + 1));
  });

  it("answers the file messages with the file API's results", async () => {
    const before = events(first).length;
    first.send({ type: "process_message", content: { text: "write notes.txt hello there" } });
    await first.waitFor((f) => f.type === "workspace_changed" && (f.seq as number) > before);

    first.send({ type: "list_files", id: "f1" });
    const listed = await reply(first, "f1");
    expect(listed).toMatchObject({ type: "reply", request: "list_files" });
    expect((listed.result as JsonObject).entries).toContainEqual(expect.objectContaining({ path: "notes.txt", type: "file" }));

    first.send({ type: "read_file", id: "f2", path: "notes.txt" });
    expect(await reply(first, "f2")).toMatchObject({ type: "reply", result: { path: "notes.txt", content: "hello there", encoding: "utf8" } });

    first.send({ type: "file_history", id: "f3", path: "notes.txt" });
    const history = (await reply(first, "f3")).result as JsonObject;
    const iterations = history.iterations as JsonObject[];
    expect(iterations.length).toBeGreaterThanOrEqual(1);

    first.send({ type: "file_at_iteration", id: 4, path: "notes.txt", iteration: iterations[0]?.iteration });
    expect(await reply(first, 4)).toMatchObject({ type: "reply", id: 4, request: "file_at_iteration", result: { path: "notes.txt", content: "hello there" } });
  });

  it("reports bad messages as correlated error frames and keeps the socket open", async () => {
    first.send({ type: "read_file", id: "e1" });
    expect(await reply(first, "e1")).toMatchObject({ type: "error", id: "e1", request: "read_file", error: { code: "invalid_argument" } });
    // The one SendMessage validator's message, as REST and /connect give it (test/e2e/bad-input.test.ts).
    first.send({ type: "process_message", id: "e-text", content: { text: 5 } });
    expect(await reply(first, "e-text")).toMatchObject({ type: "error", id: "e-text", error: { code: "invalid_argument", message: "content.text must be a string" } });
    first.send({ type: "read_file", id: "e2", path: "missing.txt" });
    expect(await reply(first, "e2")).toMatchObject({ type: "error", id: "e2", error: { code: "not_found" } });
    first.send("{not json");
    await first.waitFor((f) => f.type === "error" && f.id === undefined && (f.error as JsonObject).code === "invalid_argument");
    first.send({ type: "list_files", id: "e3" });
    expect(await reply(first, "e3")).toMatchObject({ type: "reply" });
    expect(first.closed).toBeUndefined();
  });

  it("resumes with after_seq and session_seq: the numbering continues where the client left off", async () => {
    const got = events(first);
    const cut = got[4] as JsonObject;
    const resumed = await bridge(instanceId, `after_seq=${cut.updateSeq as number}&session_seq=${cut.seq as number}&session_id=browser-1`);
    const next = await resumed.waitFor((f) => typeof f.seq === "number");
    expect(next).toMatchObject({ seq: (cut.seq as number) + 1, sessionId: "browser-1", type: (got[5] as JsonObject).type, data: (got[5] as JsonObject).data });
  });

  it("TranslatorService is served by the gateway: Translate, and StreamClientEvents replays an instance from the start", async () => {
    const withKey: Interceptor = (next) => (req) => {
      req.header.set("authorization", `Bearer ${API_KEY}`);
      return next(req);
    };
    const translator = createClient(TranslatorService, createConnectTransport({ baseUrl: fixture.url, httpVersion: "1.1", interceptors: [withKey] }));
    const translated = await translator.translate({ update: create(StreamUpdateSchema, { messageType: "stream_update", content: { text: "x" } }), sessionId: "s", sessionSeq: 4n });
    expect(translated.events.map((e) => [e.type, Number(e.seq)])).toEqual([["text_delta", 5]]);
    expect(translated.sessionSeq).toBe(5n);

    // An instance that has ended, so the stream ends by itself.
    const created = await fixture.api("POST", "/api/v1/instances", { deployment_id: "echo-ts:1.0.0@local" });
    const ended = created.json.instance_id as string;
    await fixture.api("POST", `/api/v1/instances/${ended}/messages`, { content: { text: "a b" } });
    for (let i = 0; i < 200; i++) {
      const history = await fixture.api("GET", `/api/v1/instances/${ended}/messages`);
      // The turn's end (its last state delta comes after `stream_end`), so the DELETE below cannot cut in.
      if ((history.json.messages as JsonObject[]).some((m) => m.message_type === "turn.done")) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    expect((await fixture.api("DELETE", `/api/v1/instances/${ended}`)).status).toBe(200);
    const streamed: Array<[string, number]> = [];
    for await (const res of translator.streamClientEvents({ instanceId: ended, afterSeq: 0n, sessionId: "replay" })) {
      streamed.push([res.event?.type ?? "", Number(res.event?.seq)]);
    }
    expect(streamed).toEqual([
      ["state_delta", 1],
      ["turn_started", 2],
      ["text_delta", 3],
      ["text_delta", 4],
      ["turn_complete", 5],
      ["state_delta", 6],
      ["session_state", 7],
      ["session_state", 8],
    ]);
  });

  it("refuses an unknown instance", async () => {
    await expect(bridge("inst-nope")).rejects.toMatchObject({ status: 404 });
  });
});
