/**
 * The ACP adapter served by the gateway at `/acp` (for browsers): one ACP connection per socket,
 * backed by the in-process gateway, against a real dev server. Uses the SDK's own WebSocket client
 * transport.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import * as acp from "@agentclientprotocol/sdk";
import { createWebSocketStream } from "@agentclientprotocol/sdk/experimental/ws-client";
import { WebSocket } from "ws";
import { API_KEY, WsClient, startDevFixture, type DevFixture } from "../helpers/dev-fixture.js";
import { AcpTestClient, agentText } from "./acp-test-client.js";
import type { JsonObject } from "../../services/shared/json.js";

let fixture: DevFixture;
const clients: AcpTestClient[] = [];

function open(query: string): AcpTestClient {
  const url = `${fixture.url.replace("http", "ws")}/acp?${query}`;
  const stream = createWebSocketStream(url, { WebSocket, headers: { authorization: `Bearer ${API_KEY}` } });
  const client = new AcpTestClient(stream);
  clients.push(client);
  return client;
}

beforeAll(async () => {
  fixture = await startDevFixture();
}, 60_000);

afterAll(async () => {
  for (const c of clients) await c.close();
  await fixture?.close();
});

describe("/acp over WebSocket", () => {
  it("refuses a socket without an API key", async () => {
    await expect(WsClient.open(`${fixture.url.replace("http", "ws")}/acp`)).rejects.toMatchObject({ status: 401 });
  });

  it("runs initialize -> new -> prompt, asks questions through elicitation, and remembers 'allow always'", async () => {
    const browser = open("deployment=acp-ts:1.0.0@local");
    const init = await browser.agent.request(acp.methods.agent.initialize, {
      protocolVersion: acp.PROTOCOL_VERSION,
      clientCapabilities: { elicitation: { form: {} } },
    });
    expect(init.agentCapabilities?.loadSession).toBe(true);

    const { sessionId } = await browser.agent.request(acp.methods.agent.session.new, { cwd: "/home/me/web", mcpServers: [] });
    const hello = await browser.agent.request(acp.methods.agent.session.prompt, { sessionId, prompt: [{ type: "text", text: "hi" }] });
    expect(hello.stopReason).toBe("end_turn");
    expect(agentText(browser.sessionUpdates(sessionId))).toBe("echo: hi (cwd /home/me/web)");

    // A question is a one-field form when the client supports elicitation.
    browser.elicitation = () => ({ action: "accept", content: { answer: "red" } });
    const asked = await browser.agent.request(acp.methods.agent.session.prompt, { sessionId, prompt: [{ type: "text", text: "question" }] });
    expect(asked.stopReason).toBe("end_turn");
    expect(browser.elicitations).toHaveLength(1);
    expect(browser.elicitations[0]).toMatchObject({ mode: "form", sessionId, message: "Pick a colour" });
    expect(agentText(browser.sessionUpdates(sessionId))).toContain('answer:"red"');

    // "Always allow" is remembered for the tool: the second request is approved without asking.
    browser.permission = () => ({ outcome: { outcome: "selected", optionId: "allow_always" } });
    for (let i = 0; i < 2; i++) {
      const response = await browser.agent.request(acp.methods.agent.session.prompt, { sessionId, prompt: [{ type: "text", text: "permission" }] });
      expect(response.stopReason).toBe("end_turn");
    }
    expect(browser.permissionRequests).toHaveLength(1);
    expect(agentText(browser.sessionUpdates(sessionId)).split('permission:{"approved":true,"option_id":"allow_always"}')).toHaveLength(3);
  });

  it("the acp-demo-ts example: a rejected write is not done, an approved one is", async () => {
    const browser = open("deployment=acp-demo-ts:1.0.0@local");
    await browser.agent.request(acp.methods.agent.initialize, { protocolVersion: acp.PROTOCOL_VERSION, clientCapabilities: {} });
    const { sessionId } = await browser.agent.request(acp.methods.agent.session.new, { cwd: "/demo", mcpServers: [] });
    browser.permission = () => ({ outcome: { outcome: "selected", optionId: "reject_once" } });
    await browser.agent.request(acp.methods.agent.session.prompt, { sessionId, prompt: [{ type: "text", text: "write hello.txt hi there" }] });
    expect(agentText(browser.sessionUpdates(sessionId))).toContain("Not writing hello.txt");
    browser.permission = () => ({ outcome: { outcome: "selected", optionId: "allow_once" } });
    await browser.agent.request(acp.methods.agent.session.prompt, { sessionId, prompt: [{ type: "text", text: "write hello.txt hi there" }] });
    expect(agentText(browser.sessionUpdates(sessionId))).toContain("Wrote hello.txt (8 characters).");
    const updates = browser.sessionUpdates(sessionId);
    expect(updates).toContainEqual(expect.objectContaining({ sessionUpdate: "tool_call", title: "list_files", kind: "read", status: "in_progress" }));
    expect(updates).toContainEqual(expect.objectContaining({ sessionUpdate: "usage_update", size: 200000 }));
  });

  it("a Python agent's request_permission and ask round-trip the same way", async () => {
    const browser = open("deployment=acp-py:1.0.0@local");
    await browser.agent.request(acp.methods.agent.initialize, { protocolVersion: acp.PROTOCOL_VERSION, clientCapabilities: {} });
    const { sessionId } = await browser.agent.request(acp.methods.agent.session.new, { cwd: "/py", mcpServers: [] });
    await browser.agent.request(acp.methods.agent.session.prompt, { sessionId, prompt: [{ type: "text", text: "hi" }] });
    expect(browser.sessionUpdates(sessionId)).toContainEqual({ sessionUpdate: "agent_thought_chunk", content: { type: "text", text: "py thinking" } });
    browser.permission = (request) =>
      request.toolCall.toolCallId === "py-perm"
        ? { outcome: { outcome: "selected", optionId: "reject_once" } }
        : { outcome: { outcome: "selected", optionId: request.options.find((o) => o.name === "2")?.optionId ?? "x" } };
    await browser.agent.request(acp.methods.agent.session.prompt, { sessionId, prompt: [{ type: "text", text: "permission" }] });
    await browser.agent.request(acp.methods.agent.session.prompt, { sessionId, prompt: [{ type: "text", text: "question" }] });
    const text = agentText(browser.sessionUpdates(sessionId));
    expect(text).toContain('permission:{"approved":false,"option_id":"reject_once"}');
    expect(text).toContain('answer:"2"');
  });

  it("a prompt to a session whose instance was stopped starts a new instance of the same agent", async () => {
    const browser = open("deployment=echo-ts:1.0.0@local");
    await browser.agent.request(acp.methods.agent.initialize, { protocolVersion: acp.PROTOCOL_VERSION, clientCapabilities: {} });
    const created = await browser.agent.request(acp.methods.agent.session.new, { cwd: "/r", mcpServers: [] });
    const first = (created._meta?.podium as { instanceId: string }).instanceId;
    expect((await fixture.api("DELETE", `/api/v1/instances/${first}`)).status).toBe(200);
    const response = await browser.agent.request(acp.methods.agent.session.prompt, { sessionId: created.sessionId, prompt: [{ type: "text", text: "still here" }] });
    expect(response.stopReason).toBe("end_turn");
    expect(agentText(browser.sessionUpdates(created.sessionId))).toBe("still here");
    const live = await fixture.api("GET", `/api/v1/instances?agent_id=${created.sessionId}`);
    expect(live.json.instances).toEqual([expect.objectContaining({ agent_id: created.sessionId })]);
    expect((live.json.instances as JsonObject[])[0]?.instance_id).not.toBe(first);
  });

  it("session/new without a deployment is invalid params; _meta.podium.deploymentId picks one", async () => {
    const browser = open("");
    await browser.agent.request(acp.methods.agent.initialize, { protocolVersion: acp.PROTOCOL_VERSION, clientCapabilities: {} });
    await expect(browser.agent.request(acp.methods.agent.session.new, { cwd: "/x", mcpServers: [] })).rejects.toMatchObject({ code: -32602 });
    const created = await browser.agent.request(acp.methods.agent.session.new, {
      cwd: "/x",
      mcpServers: [],
      _meta: { podium: { deploymentId: "echo-ts:1.0.0@local" } },
    });
    const response = await browser.agent.request(acp.methods.agent.session.prompt, { sessionId: created.sessionId, prompt: [{ type: "text", text: "one two" }] });
    expect(response.stopReason).toBe("end_turn");
    expect(agentText(browser.sessionUpdates(created.sessionId))).toBe("one two");
  });
});
