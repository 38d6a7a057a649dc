/**
 * Issue 18, "Edges": a client plays the attacker against a real `podium dev` on port 0, through every
 * protocol of the one port. Each attack must fail with a clean client error (400 / invalid_argument,
 * 404 / not_found, ...), never a 500, and the server must keep serving afterwards.
 */
import http2 from "node:http2";
import net from "node:net";
import os from "node:os";
import zlib from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { Code, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Header } from "tar";
import { API_KEY, WsClient, startDevFixture, type DevFixture } from "../helpers/dev-fixture.js";
import { InstanceService } from "../../gen/podium/v1/instance_service_pb.js";
import type { JsonObject } from "../../services/shared/json.js";

let podium: DevFixture;
let healthyId: string;
let healthy: WsClient;

const withKey: Interceptor = (next) => (req) => {
  req.header.set("authorization", `Bearer ${API_KEY}`);
  return next(req);
};
const grpcClient = () => createClient(InstanceService, createGrpcTransport({ baseUrl: podium.url, interceptors: [withKey] }));

beforeAll(async () => {
  podium = await startDevFixture();
  const created = await podium.api("POST", "/api/v1/instances", { deployment_id: "echo-ts:1.0.0@local" });
  expect(created.status).toBe(201);
  healthyId = created.json.instance_id as string;
  healthy = await podium.connect(healthyId);
}, 60_000);
afterAll(async () => {
  await podium?.close();
});

const errorOf = (json: JsonObject) => json.error as JsonObject;
const wsUrl = (path: string) => `${podium.url.replace("http", "ws")}${path}${path.includes("?") ? "&" : "?"}api_key=${API_KEY}`;

/** The server still answers: /healthz, and a turn of the healthy instance end to end. */
async function expectServing(): Promise<void> {
  expect((await podium.api("GET", "/healthz", undefined, {})).status).toBe(200);
  const text = `alive-${Math.random().toString(36).slice(2)}`;
  healthy.send({ type: "process_message", content: { text } });
  await healthy.waitFor((f) => f.messageType === "stream_update" && (f.content as JsonObject).text === text);
}

/** `{"a":{"a":...1...}}` nested `depth` objects deep, as text (JSON.stringify itself would overflow). */
function deepJson(depth: number): string {
  return '{"a":'.repeat(depth) + "1" + "}".repeat(depth);
}

function deepObject(depth: number): JsonObject {
  let value: JsonObject = { leaf: true };
  for (let i = 1; i < depth; i++) value = { a: value };
  return value;
}

async function post(path: string, body: string | Buffer, contentType = "application/json"): Promise<{ status: number; text: string }> {
  const res = await fetch(podium.url + path, { method: "POST", headers: { authorization: `Bearer ${API_KEY}`, "content-type": contentType }, body });
  return { status: res.status, text: await res.text() };
}

/** One raw HTTP/1.1 exchange: the status code of the answer (0 when the server just closed). */
function rawHttp(request: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(podium.server.port, "127.0.0.1", () => socket.write(request));
    let answer = "";
    socket.on("data", (chunk) => (answer += chunk.toString("latin1")));
    socket.on("close", () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0)));
    socket.on("error", reject);
  });
}

/** A gRPC call with a hand-made request message over h2c: the grpc-status it ends with. */
async function rawGrpc(path: string, message: Buffer): Promise<{ status: string; message: string }> {
  const session = http2.connect(podium.url);
  session.on("error", () => undefined);
  try {
    const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${API_KEY}` });
    const envelope = Buffer.alloc(5);
    envelope.writeUInt32BE(message.length, 1);
    stream.end(Buffer.concat([envelope, message]));
    return await new Promise((resolve, reject) => {
      const seen: http2.IncomingHttpHeaders = {};
      stream.on("response", (headers) => Object.assign(seen, headers));
      stream.on("trailers", (trailers) => Object.assign(seen, trailers));
      stream.on("error", reject);
      stream.on("close", () => resolve({ status: String(seen["grpc-status"]), message: decodeURIComponent(String(seen["grpc-message"] ?? "")) }));
      stream.resume();
    });
  } finally {
    session.close();
  }
}

/** A .tar.gz made by hand from (path, content) entries, so a test can make archives `tar` would not. */
function tarGz(entries: [string, Buffer][], trailing = Buffer.alloc(0)): Buffer {
  const blocks: Buffer[] = [];
  for (const [path, content] of entries) {
    const header = Buffer.alloc(512);
    new Header({ path, mode: 0o644, size: content.length, type: "File", mtime: new Date(0), uid: 0, gid: 0 }).encode(header, 0);
    blocks.push(header, content, Buffer.alloc((512 - (content.length % 512)) % 512));
  }
  return zlib.gzipSync(Buffer.concat([...blocks, Buffer.alloc(1024), trailing]), { level: 9 });
}

const MANIFEST: [string, Buffer] = ["podium.json", Buffer.from(JSON.stringify({ name: "edges", version: "1.0.0", runtime: "python", entry: "agent.py" }))];
const AGENT: [string, Buffer] = ["agent.py", Buffer.from("def on_message(ctx, message):\n    pass\n")];
const HUNDRED_MB = 100 * 1024 * 1024;

describe("100,000-deep JSON", () => {
  const DEEP = deepJson(100_000);

  it.each([
    ["a REST message", `/api/v1/instances/{id}/messages`, `{"type":"process_message","content":${DEEP}}`],
    ["a REST create", "/api/v1/instances", `{"deployment_id":"echo-ts:1.0.0@local","environment":${DEEP}}`],
    ["a REST answer", `/api/v1/instances/{id}/answers`, `{"request_id":"r1","value":${DEEP}}`],
  ])("%s answers 400 invalid_argument", async (_name, path, body) => {
    const res = await post(path.replace("{id}", healthyId), body);
    expect(res.status).toBe(400);
    expect(JSON.parse(res.text)).toMatchObject({ error: { code: "invalid_argument", message: expect.stringContaining("levels deep") } });
    await expectServing();
  });

  it("a WebSocket frame on /connect and on /events answers an invalid_argument error frame and the socket stays open", async () => {
    const before = healthy.frames.length;
    healthy.send(`{"type":"process_message","content":${DEEP}}`);
    const error = await healthy.waitFor((f) => f.type === "error" && healthy.frames.indexOf(f) >= before);
    expect(errorOf(error)).toMatchObject({ code: "invalid_argument", message: expect.stringContaining("levels deep") });

    const events = await WsClient.open(wsUrl(`/api/v1/instances/${healthyId}/events`));
    try {
      events.send(`{"type":"process_message","content":${DEEP}}`);
      const bridged = await events.waitFor((f) => f.type === "error");
      expect(errorOf(bridged)).toMatchObject({ code: "invalid_argument", message: expect.stringContaining("levels deep") });
      expect(events.closed).toBeUndefined();
    } finally {
      events.close();
    }
    await expectServing();
  });

  it("Connect JSON and gRPC answer invalid_argument", async () => {
    const connect = await post("/podium.v1.InstanceService/SendMessage", `{"instanceId":"${healthyId}","content":${DEEP}}`);
    expect(connect.status).toBe(400);
    expect(JSON.parse(connect.text)).toMatchObject({ code: "invalid_argument" });
    // Deeper than protobuf's recursion limit (100 message levels), in the binary format.
    await expect(grpcClient().sendMessage({ instanceId: healthyId, content: deepObject(200) })).rejects.toMatchObject({ code: Code.InvalidArgument });
    await expectServing();
  });

  it("content nested within the limit still reaches the agent through every hop", async () => {
    const res = await podium.api("POST", `/api/v1/instances/${healthyId}/messages`, { content: { text: "deep-ok", nested: deepObject(30) } });
    expect(res.status).toBe(202);
    await healthy.waitFor((f) => f.messageType === "stream_update" && (f.content as JsonObject).text === "deep-ok");
  });
});

describe("bad percent-encoding and request targets", () => {
  it.each([["/api/v1/instances/%ZZ/connect"], ["/api/v1/instances/%ZZ/events"], ["/api/v1/instances/%E0%A4%A/connect"]])("the WebSocket upgrade %s answers 400", async (path) => {
    await expect(WsClient.open(wsUrl(path))).rejects.toMatchObject({ status: 400 });
    await expectServing();
  });

  it.each([["/api/v1/deployments/%ZZ"], ["/api/v1/instances/inst-x/files/%ZZ"], ["/api/v1/agents/agent-x/files/a/%ZZ/history"]])("REST GET %s answers 400", async (path) => {
    const res = await podium.api("GET", path);
    expect(res.status).toBe(400);
    expect(errorOf(res.json)).toMatchObject({ code: "invalid_argument", message: expect.stringContaining("percent-encoding") });
  });

  it("a request target that is not a URL answers 400 on REST and on the upgrade", async () => {
    expect(await rawHttp(`GET //[ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${API_KEY}\r\nConnection: close\r\n\r\n`)).toBe(400);
    const upgrade = `GET //[ HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;
    expect(await rawHttp(upgrade)).toBe(400);
    await expectServing();
  });
});

describe("malformed protobuf", () => {
  const GARBAGE = Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]); // field 1, a length far past the end

  it("Connect (binary) answers 400 invalid_argument", async () => {
    const res = await post("/podium.v1.InstanceService/GetInstance", GARBAGE, "application/proto");
    expect(res.status).toBe(400);
    expect(JSON.parse(res.text)).toMatchObject({ code: "invalid_argument" });
  });

  it("gRPC answers INVALID_ARGUMENT (3), unary and server-streaming", async () => {
    for (const method of ["GetInstance", "StreamUpdates"]) {
      const res = await rawGrpc(`/podium.v1.InstanceService/${method}`, GARBAGE);
      expect(res).toMatchObject({ status: String(Code.InvalidArgument), message: expect.stringContaining("parse binary") });
    }
    await expectServing();
  });

  it("gRPC-Web answers INVALID_ARGUMENT (3)", async () => {
    const envelope = Buffer.alloc(5);
    envelope.writeUInt32BE(GARBAGE.length, 1);
    const res = await fetch(`${podium.url}/podium.v1.InstanceService/GetInstance`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
      body: Buffer.concat([envelope, GARBAGE]),
    });
    const body = Buffer.from(await res.arrayBuffer()).toString("latin1");
    expect(res.headers.get("grpc-status") ?? /grpc-status: ?(\d+)/.exec(body)?.[1]).toBe(String(Code.InvalidArgument));
  });
});

describe("answers", () => {
  let askerId: string;
  let asker: WsClient;

  beforeAll(async () => {
    const created = await podium.api("POST", "/api/v1/instances", { deployment_id: "acp-ts:1.0.0@local" });
    expect(created.status).toBe(201);
    askerId = created.json.instance_id as string;
    asker = await podium.connect(askerId);
  }, 60_000);

  async function resolvedEvents(): Promise<JsonObject[]> {
    const res = await podium.api("GET", `/api/v1/instances/${askerId}/messages?limit=1000`);
    return (res.json.messages as JsonObject[]).filter((m) => m.message_type === "tool.approval_resolved");
  }

  it("an unknown request_id answers 404 on REST, WebSocket and gRPC, and nothing is recorded", async () => {
    const res = await podium.api("POST", `/api/v1/instances/${askerId}/answers`, { request_id: "forged-1", value: { approved: true } });
    expect(res.status).toBe(404);
    expect(errorOf(res.json)).toMatchObject({ code: "not_found", message: expect.stringContaining("no open request") });

    const before = asker.frames.length;
    asker.send({ type: "answer", request_id: "forged-2", value: true });
    const error = await asker.waitFor((f) => f.type === "error" && asker.frames.indexOf(f) >= before);
    expect(errorOf(error).code).toBe("not_found");

    await expect(grpcClient().answerRequest({ instanceId: askerId, requestId: "forged-3" })).rejects.toMatchObject({ code: Code.NotFound });
    expect(await resolvedEvents()).toEqual([]);
    await expectServing();
  });

  it("a real request is answered once; the second answer is 404 and recorded nothing", async () => {
    asker.send({ type: "process_message", content: { text: "question" } });
    const asked = await asker.waitFor((f) => f.messageType === "tool.question_requested");
    const requestId = (asked.content as JsonObject).request_id as string;
    const first = await podium.api("POST", `/api/v1/instances/${askerId}/answers`, { request_id: requestId, value: "red" });
    expect(first.status).toBe(200);
    await asker.waitFor((f) => f.messageType === "stream_update" && (f.content as JsonObject).text === 'answer:"red"');
    const again = await podium.api("POST", `/api/v1/instances/${askerId}/answers`, { request_id: requestId, value: "blue" });
    expect(again.status).toBe(404);
    await expect(grpcClient().answerRequest({ instanceId: askerId, requestId })).rejects.toMatchObject({ code: Code.NotFound });
    const resolved = await resolvedEvents();
    expect(resolved.map((m) => (m.content as JsonObject).request_id)).toEqual([requestId]);
    expect((resolved[0]?.content as JsonObject).value).toBe("red");
  });
});

describe("deployment uploads", () => {
  it("an error names no host path (registry scratch directory)", async () => {
    // "a" is a file, then "a/b" needs it to be a directory: the extractor's fs error names its scratch path.
    const archive = tarGz([MANIFEST, AGENT, ["a", Buffer.from("x")], ["a/b", Buffer.from("y")]]);
    const res = await post("/api/v1/deployments", archive, "application/gzip");
    expect(res.status).toBe(400);
    expect(JSON.parse(res.text)).toMatchObject({ error: { code: "invalid_argument", message: expect.stringContaining('"a/b"') } });
    for (const hostPath of [podium.dataDir, os.tmpdir(), "podium-upload-", ".tmp"]) expect(res.text).not.toContain(hostPath);
  });

  it.each([
    ["100 MB of zeros, gzipped (not even a tar)", () => zlib.gzipSync(Buffer.alloc(HUNDRED_MB), { level: 9 })],
    ["a valid bundle with a 100 MB file of zeros", () => tarGz([MANIFEST, AGENT, ["zeros.bin", Buffer.alloc(HUNDRED_MB)]])],
    ["a valid bundle followed by 100 MB of zeros after its end-of-archive marker", () => tarGz([MANIFEST, AGENT], Buffer.alloc(HUNDRED_MB))],
  ])("%s is refused with 400 quickly while /healthz keeps answering", async (_name, make) => {
    const archive = make();
    expect(archive.length).toBeLessThan(200 * 1024);
    const cpu = process.cpuUsage();
    const upload = post("/api/v1/deployments", archive, "application/gzip");
    const health = await podium.api("GET", "/healthz", undefined, {});
    const res = await upload;
    const used = process.cpuUsage(cpu);
    expect(health.status).toBe(200);
    expect(res.status).toBe(400);
    expect(JSON.parse(res.text)).toMatchObject({ error: { code: "invalid_argument", message: expect.stringContaining("compression bomb") } });
    // Generous (the machine is shared): the quadratic version burned minutes.
    expect((used.user + used.system) / 1e6).toBeLessThan(5);
    await expectServing();
  });
});

describe("idle and half-sent connections", () => {
  /** Resolves with how long the server took to close the socket (rejects after `limitMs`). */
  function closedWithin(socket: net.Socket | http2.ClientHttp2Session, limitMs: number): Promise<number> {
    const start = Date.now();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`still open after ${limitMs} ms`)), limitMs);
      socket.on("error", () => undefined);
      socket.once("close", () => {
        clearTimeout(timer);
        resolve(Date.now() - start);
      });
    });
  }

  /** A raw connection that sends `firstBytes` and then nothing; `answer` collects what the server says. */
  function rawSocket(firstBytes: string): net.Socket & { answer: string } {
    const socket = Object.assign(
      net.connect(podium.server.port, "127.0.0.1", () => {
        if (firstBytes) socket.write(firstBytes);
      }),
      { answer: "" },
    );
    socket.on("data", (chunk: Buffer) => (socket.answer += chunk.toString("latin1")));
    return socket;
  }

  it("closes what sends nothing or half a request, and keeps idle WebSockets and gRPC streams open", async () => {
    const silent = rawSocket("");
    const halfHeader = rawSocket("GET /healthz HTTP/1.1\r\nHost: x\r\n");
    const halfPreface = rawSocket("PRI * HTTP/2.0\r\n");
    const idleSession = http2.connect(podium.url);
    // What must survive being quiet: a WebSocket and a gRPC server stream, both healthy.
    const ws = await podium.connect(healthyId);
    const controller = new AbortController();
    const updates: string[] = [];
    const stream = (async () => {
      for await (const res of grpcClient().streamUpdates({ instanceId: healthyId }, { signal: controller.signal })) {
        for (const u of res.updates) updates.push(String(u.content?.text ?? ""));
      }
    })().catch((err: unknown) => {
      if (!controller.signal.aborted) throw err;
    });

    const limit = 30_000; // the timeouts are 10 s (+1 s checking interval); generous for a loaded machine
    const waited = await Promise.all([silent, halfHeader, halfPreface, idleSession].map((s) => closedWithin(s, limit)));
    expect(waited.every((ms) => ms < limit)).toBe(true);
    expect(halfHeader.answer).toMatch(/^HTTP\/1\.1 408 /);

    expect(ws.closed).toBeUndefined();
    ws.send({ type: "process_message", content: { text: "still open" } });
    await ws.waitFor((f) => f.messageType === "stream_update" && (f.content as JsonObject).text === "open");
    const deadline = Date.now() + 10_000;
    while (!updates.includes("open") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(updates).toContain("open");
    controller.abort();
    await stream;
    await expectServing();
  }, 60_000);
});
