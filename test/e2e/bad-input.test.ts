/** Bad input gets a clear error with the right status, and the server and other instances keep working. */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { API_KEY, startDevFixture, WsClient, type DevFixture } from "../helpers/dev-fixture.js";
import type { JsonObject } from "../../services/shared/json.js";

let podium: DevFixture;
let healthyId: string;
let healthy: WsClient;

beforeAll(async () => {
  podium = await startDevFixture();
  const created = await podium.api("POST", "/api/v1/instances", { deployment_id: "echo-ts:1.0.0@local" });
  healthyId = created.json.instance_id as string;
  healthy = await podium.connect(healthyId);
});
afterAll(async () => {
  await podium.close();
});

function errorOf(json: JsonObject): JsonObject {
  return json.error as JsonObject;
}

describe("REST", () => {
  it.each([
    ["malformed JSON", "POST", "/api/v1/instances", "{not json", 400, "invalid_argument", "not valid JSON"],
    ["a JSON array body", "POST", "/api/v1/instances", "[1,2]", 400, "invalid_argument", "must be an object"],
    ["missing deployment_id", "POST", "/api/v1/instances", {}, 400, "invalid_argument", "deployment_id is required"],
    ["deployment_id of the wrong type", "POST", "/api/v1/instances", { deployment_id: 42 }, 400, "invalid_argument", "deployment_id must be a string"],
    ["secrets that are not strings", "POST", "/api/v1/instances", { deployment_id: "echo-ts:1.0.0", secrets: { A: 1 } }, 400, "invalid_argument", "secrets.A must be a string"],
    ["a reserved environment name", "POST", "/api/v1/instances", { deployment_id: "echo-ts:1.0.0", environment: { PODIUM_AGENT_ID: "x" } }, 400, "invalid_argument", "reserved"],
    ["a bad agent id", "POST", "/api/v1/instances", { deployment_id: "echo-ts:1.0.0", agent_id: "../etc" }, 400, "invalid_argument", "agent_id"],
    ["an unknown deployment", "POST", "/api/v1/instances", { deployment_id: "nope:1.0.0@local" }, 404, "not_found", "unknown deployment nope:1.0.0@local"],
    ["a malformed deployment id", "POST", "/api/v1/instances", { deployment_id: "no version" }, 400, "invalid_argument", "deployment"],
    ["an unknown instance (GET)", "GET", "/api/v1/instances/inst-unknown", undefined, 404, "not_found", "unknown instance inst-unknown"],
    ["an unknown instance (DELETE)", "DELETE", "/api/v1/instances/inst-unknown", undefined, 404, "not_found", "unknown instance"],
    ["an unknown route", "GET", "/api/v1/nothing", undefined, 404, "not_found", "no route"],
    ["a bad query integer", "GET", "/api/v1/instances/inst-x/messages?after_seq=-1", undefined, 400, "invalid_argument", "after_seq"],
    // The same message as /connect and /events give for it (the one SendMessage validator).
    ["a content text that is not a string", "POST", "/api/v1/instances/inst-x/messages", { content: { text: 5 } }, 400, "invalid_argument", "content.text must be a string"],
    ["an empty bundle upload", "POST", "/api/v1/deployments", "", 400, "invalid_argument", "tar.gz"],
    ["a bundle that is not gzip", "POST", "/api/v1/deployments", "garbage", 400, "invalid_argument", ""],
  ])("%s", async (_name, method, path, body, status, code, message) => {
    const res = await podium.api(method, path, body);
    expect(res.status).toBe(status);
    expect(errorOf(res.json).code).toBe(code);
    expect(errorOf(res.json).message).toContain(message);
  });

  it("refuses a body over the limit with 413", async () => {
    const res = await podium.api("POST", `/api/v1/instances/${healthyId}/messages`, { content: { text: "x".repeat(3 * 1024 * 1024) } });
    expect(res.status).toBe(413);
  });

  it.each([
    ["no key", {}],
    ["a wrong bearer key", { authorization: "Bearer wrong" }],
    ["a wrong x-api-key", { "x-api-key": "wrong" }],
    ["a key that is a prefix of the real one", { "x-api-key": API_KEY.slice(0, -1) }],
  ])("answers 401 for %s", async (_name, headers) => {
    const res = await podium.api("GET", "/api/v1/instances", undefined, headers);
    expect(res.status).toBe(401);
    expect(errorOf(res.json).code).toBe("unauthenticated");
  });

  it("accepts x-api-key as well as a bearer token, and /health without a key", async () => {
    expect((await podium.api("GET", "/api/v1/instances", undefined, { "x-api-key": API_KEY })).status).toBe(200);
    expect((await podium.api("GET", "/health", undefined, {})).status).toBe(200);
  });
});

describe("WebSocket", () => {
  const wsUrl = (id: string, query: string) => `${podium.url.replace("http", "ws")}/api/v1/instances/${id}/connect${query}`;

  it.each([
    ["no key", ""],
    ["a wrong key", "?api_key=wrong"],
  ])("refuses the upgrade with 401 for %s", async (_name, query) => {
    await expect(WsClient.open(wsUrl(healthyId, query))).rejects.toMatchObject({ status: 401 });
  });

  it("refuses the upgrade with 404 for an unknown instance", async () => {
    await expect(WsClient.open(wsUrl("inst-unknown", `?api_key=${API_KEY}`))).rejects.toMatchObject({ status: 404 });
  });

  it("accepts the key in a header", async () => {
    const ws = await WsClient.open(wsUrl(healthyId, ""), { authorization: `Bearer ${API_KEY}` });
    ws.close();
  });

  it.each([
    ["not JSON", "{{{", "not valid JSON"],
    ["not process_message", { type: "launch_missiles" }, 'unsupported frame type "launch_missiles"'],
    ["content that is not an object", { type: "process_message", content: "hi" }, "content must be an object"],
    ["content whose text is not a string", { type: "process_message", content: { text: 5 } }, "content.text must be a string"],
  ])("answers a frame that is %s with an error frame and keeps the socket open", async (_name, frame, message) => {
    const before = healthy.frames.length;
    healthy.send(frame);
    const error = await healthy.waitFor((f) => f.type === "error" && healthy.frames.indexOf(f) >= before);
    expect((error.error as JsonObject).message).toContain(message);
    expect((error.error as JsonObject).code).toBe("invalid_argument");
    healthy.send({ type: "process_message", content: { text: "still here" } });
    await healthy.waitFor((f) => f.messageType === "stream_update" && (f.content as JsonObject).text === "here");
  });
});
