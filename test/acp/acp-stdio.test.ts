/**
 * `podium acp` as an editor runs it: a child process speaking ACP over stdio to a client built
 * with @agentclientprotocol/sdk, backed by a real dev server (gateway + coordinator + agents).
 * initialize -> session/new -> session/prompt (streamed) -> permission and question round trips
 * -> cancel -> turn error -> a second editor process lists and loads the session (history replayed).
 */
import { spawnSync } from "node:child_process";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import * as acp from "@agentclientprotocol/sdk";
import { API_KEY, startDevFixture, type DevFixture } from "../helpers/dev-fixture.js";
import { AcpTestClient, agentText } from "./acp-test-client.js";
import { REPO_ROOT } from "../../services/coordinator/runtime-commands.js";

const DEPLOYMENT = "acp-ts:1.0.0@local";
const CWD = "/tmp/acp-project";

let fixture: DevFixture;
let editor: AcpTestClient;
let sessionId: string;
let stderr = "";

function launch(): AcpTestClient {
  return AcpTestClient.spawn(["--url", fixture.url, "--deployment", DEPLOYMENT, "--api-key", API_KEY, "--cancel-grace-ms", "5000"], (t) => (stderr += t));
}

async function prompt(client: AcpTestClient, text: string): Promise<{ response: acp.PromptResponse; updates: acp.SessionUpdate[] }> {
  const before = client.sessionUpdates(sessionId).length;
  const response = await client.agent.request(acp.methods.agent.session.prompt, { sessionId, prompt: [{ type: "text", text }] });
  return { response, updates: client.sessionUpdates(sessionId).slice(before) };
}

beforeAll(async () => {
  fixture = await startDevFixture();
  editor = launch();
}, 60_000);

afterAll(async () => {
  await editor?.close();
  await fixture?.close();
});

describe("podium acp over stdio", () => {
  it("initialize advertises what the adapter supports", async () => {
    const init = await editor.agent.request(acp.methods.agent.initialize, { protocolVersion: acp.PROTOCOL_VERSION, clientCapabilities: {} });
    expect(init.protocolVersion).toBe(acp.PROTOCOL_VERSION);
    expect(init.agentCapabilities).toMatchObject({
      loadSession: true,
      promptCapabilities: { image: false, audio: false, embeddedContext: true },
      sessionCapabilities: { list: {} },
    });
    expect(init.agentInfo).toMatchObject({ name: "podium" });
  });

  it("session/new creates an instance of the deployment; the session id is its agent id", async () => {
    const created = await editor.agent.request(acp.methods.agent.session.new, { cwd: CWD, mcpServers: [] });
    sessionId = created.sessionId;
    const { status, json } = await fixture.api("GET", `/api/v1/instances?agent_id=${encodeURIComponent(sessionId)}`);
    expect(status).toBe(200);
    expect(json.instances).toEqual([expect.objectContaining({ agent_id: sessionId, deployment_id: DEPLOYMENT })]);
  });

  it("session/prompt streams thinking, the tool call, usage and text, and ends with end_turn", async () => {
    const { response, updates } = await prompt(editor, "hello world");
    expect(response.stopReason).toBe("end_turn");
    expect(agentText(updates)).toBe(`echo: hello world (cwd ${CWD})`);
    expect(updates).toContainEqual({ sessionUpdate: "agent_thought_chunk", content: { type: "text", text: "pondering" } });
    expect(updates).toContainEqual(expect.objectContaining({ sessionUpdate: "tool_call", toolCallId: "call-1", status: "pending", kind: "read" }));
    expect(updates).toContainEqual(expect.objectContaining({ sessionUpdate: "tool_call_update", toolCallId: "call-1", status: "in_progress", rawInput: { path: "notes.txt" } }));
    expect(updates).toContainEqual(expect.objectContaining({ sessionUpdate: "tool_call_update", toolCallId: "call-1", status: "completed", rawOutput: "file contents" }));
    expect(updates).toContainEqual({ sessionUpdate: "usage_update", used: 120, size: 8000, cost: { amount: 0.01, currency: "USD" } });
    // Order: the tool call is announced before it completes, the text comes last.
    const kinds = updates.map((u) => u.sessionUpdate);
    expect(kinds.indexOf("tool_call")).toBeLessThan(kinds.lastIndexOf("tool_call_update"));
    expect(kinds[kinds.length - 1]).toBe("agent_message_chunk");
  });

  it("a permission request goes to the client and its choice goes back to the agent", async () => {
    editor.permission = (request) => {
      const allow = request.options.find((o) => o.kind === "allow_once");
      return { outcome: { outcome: "selected", optionId: allow?.optionId ?? "missing" } };
    };
    const { response, updates } = await prompt(editor, "permission");
    expect(response.stopReason).toBe("end_turn");
    const request = editor.permissionRequests.at(-1);
    expect(request).toMatchObject({ sessionId, toolCall: { toolCallId: "perm-1", title: "Run ls", rawInput: { cmd: "ls" } } });
    expect(request?.options.map((o) => o.kind)).toEqual(["allow_once", "allow_always", "reject_once"]);
    expect(agentText(updates)).toBe('permission:{"approved":true,"option_id":"allow_once"}');
    // The platform recorded the answer.
    const instances = await fixture.api("GET", `/api/v1/instances?agent_id=${encodeURIComponent(sessionId)}`);
    const instanceId = (instances.json.instances as Array<{ instance_id: string }>)[0]?.instance_id;
    const history = await fixture.api("GET", `/api/v1/instances/${instanceId}/messages?limit=1000`);
    expect(history.json.messages).toContainEqual(expect.objectContaining({ message_type: "tool.approval_resolved" }));
  });

  it("a question with choices is asked as a permission request with one option per choice", async () => {
    editor.permission = (request) => ({ outcome: { outcome: "selected", optionId: request.options.find((o) => o.name === "blue")?.optionId ?? "x" } });
    const { response, updates } = await prompt(editor, "question");
    expect(response.stopReason).toBe("end_turn");
    expect(editor.permissionRequests.at(-1)?.toolCall.title).toBe("Pick a colour");
    expect(agentText(updates)).toBe('answer:"blue"');
  });

  it("session/cancel cancels the agent's turn and the prompt stops with cancelled", async () => {
    const before = editor.sessionUpdates(sessionId).length;
    const running = editor.agent.request(acp.methods.agent.session.prompt, { sessionId, prompt: [{ type: "text", text: "slow" }] });
    await editor.waitForUpdate((u) => u.sessionUpdate === "agent_message_chunk" && u.content.type === "text" && u.content.text === "2 ");
    await editor.agent.notify(acp.methods.agent.session.cancel, { sessionId });
    const response = await running;
    expect(response.stopReason).toBe("cancelled");
    const text = agentText(editor.sessionUpdates(sessionId).slice(before));
    // The agent saw the cancel (ctx.signal) long before its 600 steps.
    expect(text.endsWith("stopped")).toBe(true);
    expect(text).not.toContain("599");
  });

  it("cancelling while a permission request is open stops the prompt with cancelled", async () => {
    let release: (() => void) | undefined;
    editor.permission = () =>
      new Promise((resolve) => {
        release = () => resolve({ outcome: { outcome: "cancelled" } });
      });
    const asked = editor.permissionRequests.length;
    const running = editor.agent.request(acp.methods.agent.session.prompt, { sessionId, prompt: [{ type: "text", text: "permission" }] });
    await editor.waitUntil(() => editor.permissionRequests.length > asked);
    await editor.agent.notify(acp.methods.agent.session.cancel, { sessionId });
    expect((await running).stopReason).toBe("cancelled");
    release?.();
  });

  it("a turn that throws fails the prompt with a JSON-RPC error", async () => {
    const failed = editor.agent.request(acp.methods.agent.session.prompt, { sessionId, prompt: [{ type: "text", text: "fail" }] });
    await expect(failed).rejects.toMatchObject({ code: -32603, message: expect.stringContaining("boom") });
    // The session still works afterwards.
    const { response } = await prompt(editor, "again");
    expect(response.stopReason).toBe("end_turn");
  });

  it("a second editor lists the session, and session/load replays its history after the instance was stopped", async () => {
    const second = launch();
    try {
      await second.agent.request(acp.methods.agent.initialize, { protocolVersion: acp.PROTOCOL_VERSION, clientCapabilities: {} });
      const listed = await second.agent.request(acp.methods.agent.session.list, {});
      expect(listed.sessions).toContainEqual(expect.objectContaining({ sessionId, cwd: CWD, title: "hello world" }));

      // Stop the instance: loading must reactivate the agent and still find its history.
      const instances = await fixture.api("GET", `/api/v1/instances?agent_id=${encodeURIComponent(sessionId)}`);
      const oldInstance = (instances.json.instances as Array<{ instance_id: string }>)[0]?.instance_id;
      expect((await fixture.api("DELETE", `/api/v1/instances/${oldInstance}`)).status).toBe(200);

      await second.agent.request(acp.methods.agent.session.load, { sessionId, cwd: CWD, mcpServers: [] });
      const replayed = second.sessionUpdates(sessionId);
      const userTexts = replayed.flatMap((u) => (u.sessionUpdate === "user_message_chunk" && u.content.type === "text" ? [u.content.text] : []));
      expect(userTexts).toEqual(["hello world", "permission", "question", "slow", "permission", "fail", "again"]);
      expect(agentText(replayed)).toContain(`echo: hello world (cwd ${CWD})`);
      expect(agentText(replayed)).toContain('permission:{"approved":true,"option_id":"allow_once"}');
      expect(replayed).toContainEqual(expect.objectContaining({ sessionUpdate: "tool_call", toolCallId: "call-1" }));
      // Replay does not ask again.
      expect(second.permissionRequests).toHaveLength(0);

      const after = await fixture.api("GET", `/api/v1/instances?agent_id=${encodeURIComponent(sessionId)}`);
      const newInstance = (after.json.instances as Array<{ instance_id: string }>)[0]?.instance_id;
      expect(newInstance).toBeDefined();
      expect(newInstance).not.toBe(oldInstance);

      const response = await second.agent.request(acp.methods.agent.session.prompt, { sessionId, prompt: [{ type: "text", text: "back" }] });
      expect(response.stopReason).toBe("end_turn");
      expect(agentText(second.sessionUpdates(sessionId))).toContain(`echo: back (cwd ${CWD})`);
    } finally {
      expect(await second.close()).toBe(0);
    }
  }, 60_000);

  it("session/load of an unknown session fails with resource not found", async () => {
    await expect(editor.agent.request(acp.methods.agent.session.load, { sessionId: "agent-doesnotexist00", cwd: CWD, mcpServers: [] })).rejects.toMatchObject({
      code: -32002,
    });
    // Nothing was started for it.
    expect((await fixture.api("GET", "/api/v1/instances?agent_id=agent-doesnotexist00")).json.instances).toEqual([]);
  });

  it("exits 0 when the editor closes stdin", async () => {
    const code = await editor.close();
    expect(code).toBe(0);
    expect(stderr).not.toMatch(/"level":"error"/);
  });
});

describe("podium acp arguments", () => {
  it("exits 2 with usage when --url or --deployment is missing", () => {
    const result = spawnSync(process.execPath, [path.join(REPO_ROOT, "bin/podium.js"), "acp", "--url", "http://127.0.0.1:9"], {
      env: { ...process.env, PODIUM_URL: "", PODIUM_DEPLOYMENT: "" },
      encoding: "utf8",
    });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("--deployment");
    expect(result.stdout).toBe("");
  });
});
