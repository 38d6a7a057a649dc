/** The client event -> ACP mapping, row by row (docs/acp.md), and the prompt -> process_message content. */
import { describe, expect, it } from "@jest/globals";
import { AcpMapper, displayText, toolKind, type AcpAction } from "../../services/acp/acp-mapping.js";
import { promptContent } from "../../services/acp/prompt-content.js";
import type { ClientEventDraft, ClientEventType } from "../../services/translator/client-event.js";
import { mapPodiumEvent, type PodiumEventInput } from "../../services/translator/map-event.js";
import type { JsonObject } from "../../services/shared/json.js";

const d = (type: ClientEventType, data: JsonObject = {}): ClientEventDraft => ({ type, data });
const run = (...drafts: ClientEventDraft[]): AcpAction[] => {
  const mapper = new AcpMapper();
  return drafts.flatMap((draft) => mapper.map(draft));
};
/** Actions of the last draft only, after the earlier ones set up state. */
const last = (...drafts: ClientEventDraft[]): AcpAction[] => {
  const mapper = new AcpMapper();
  for (const draft of drafts.slice(0, -1)) mapper.map(draft);
  return mapper.map(drafts[drafts.length - 1] as ClientEventDraft);
};

const ROWS: Array<[string, ClientEventDraft[], AcpAction[]]> = [
  ["text_delta -> agent_message_chunk", [d("text_delta", { text: "Hi" })], [{ kind: "update", update: { sessionUpdate: "agent_message_chunk", content: { type: "text", text: "Hi" } } }]],
  ["empty text_delta -> nothing", [d("text_delta", { text: "" })], []],
  ["turn_started -> nothing", [d("turn_started", { turn_id: "1" })], []],
  ["turn_complete -> end_turn", [d("turn_complete")], [{ kind: "turn_end", stopReason: "end_turn" }]],
  ["turn_complete with an ACP stop reason keeps it", [d("turn_complete", { stop_reason: "max_tokens" })], [{ kind: "turn_end", stopReason: "max_tokens" }]],
  ["turn_complete with another reason -> end_turn", [d("turn_complete", { stop_reason: "done" })], [{ kind: "turn_end", stopReason: "end_turn" }]],
  [
    "turn_complete carrying the full text when nothing streamed -> one chunk, then the end",
    [d("turn_complete", { text: "All at once" })],
    [
      { kind: "update", update: { sessionUpdate: "agent_message_chunk", content: { type: "text", text: "All at once" } } },
      { kind: "turn_end", stopReason: "end_turn" },
    ],
  ],
  ["turn_error -> turn_error", [d("turn_error", { message: "boom", code: "internal" })], [{ kind: "turn_error", message: "boom", code: "internal" }]],
  ["thinking_start -> nothing", [d("thinking_start")], []],
  [
    "thinking_progress -> agent_thought_chunk",
    [d("thinking_progress", { text: "hmm" })],
    [{ kind: "update", update: { sessionUpdate: "agent_thought_chunk", content: { type: "text", text: "hmm" } } }],
  ],
  [
    "thinking_complete with text nobody streamed -> agent_thought_chunk",
    [d("thinking_start"), d("thinking_complete", { text: "reasoned" })],
    [{ kind: "update", update: { sessionUpdate: "agent_thought_chunk", content: { type: "text", text: "reasoned" } } }],
  ],
  [
    "tool_call_start -> tool_call pending",
    [d("tool_call_start", { tool_call_id: "c1", name: "bash" })],
    [{ kind: "update", update: { sessionUpdate: "tool_call", toolCallId: "c1", title: "bash", name: "bash", kind: "execute", status: "pending" } }],
  ],
  [
    "tool_call (new) -> tool_call in_progress with rawInput",
    [d("tool_call", { tool_call_id: "c2", name: "read_file", args: { path: "a" } })],
    [{ kind: "update", update: { sessionUpdate: "tool_call", toolCallId: "c2", title: "read_file", name: "read_file", kind: "read", status: "in_progress", rawInput: { path: "a" } } }],
  ],
  ["usage_update without a known context window -> nothing", [d("usage_update", { input_tokens: 10, output_tokens: 5 })], []],
  ["usage_context -> usage_update", [d("usage_context", { total_tokens: 50, context_window: 1000 })], [{ kind: "update", update: { sessionUpdate: "usage_update", used: 50, size: 1000 } }]],
  [
    "question_requested -> question",
    [d("question_requested", { request_id: "q1", question: "Why?", options: ["a", "b"] })],
    [{ kind: "question", requestId: "q1", question: "Why?", choices: ["a", "b"] }],
  ],
  ["approval_resolved -> resolved", [d("approval_resolved", { request_id: "q1", value: "a" })], [{ kind: "resolved", requestId: "q1" }]],
  ["terminal_stream -> nothing (no ACP equivalent)", [d("terminal_stream", { data: "ls" })], []],
  ["sandbox_ready -> nothing", [d("sandbox_ready")], []],
  ["session_state -> nothing (the stream's end ends a prompt)", [d("session_state", { state: "terminated" })], []],
  ["state_delta -> nothing", [d("state_delta", { version: 2, patch: [] })], []],
];

describe("AcpMapper", () => {
  it.each(ROWS)("%s", (_name, drafts, expected) => {
    expect(run(...drafts)).toEqual(expected);
  });

  it("tool_call after tool_call_start updates the same call; deltas accumulate into rawInput; results complete it", () => {
    const start = d("tool_call_start", { tool_call_id: "c1", name: "edit_file" });
    const delta1 = d("tool_call_delta", { tool_call_id: "c1", delta: '{"path":' });
    const delta2 = d("tool_call_delta", { tool_call_id: "c1", delta: '"a.ts"}' });
    const call = d("tool_call", { tool_call_id: "c1", name: "edit_file", args: { path: "a.ts" } });
    expect(last(start, delta1)).toEqual([{ kind: "update", update: { sessionUpdate: "tool_call_update", toolCallId: "c1", rawInput: '{"path":' } }]);
    expect(last(start, delta1, delta2)).toEqual([{ kind: "update", update: { sessionUpdate: "tool_call_update", toolCallId: "c1", rawInput: { path: "a.ts" } } }]);
    expect(last(start, call)).toEqual([{ kind: "update", update: { sessionUpdate: "tool_call_update", toolCallId: "c1", status: "in_progress", rawInput: { path: "a.ts" }, title: "edit_file" } }]);
    expect(last(start, call, d("tool_result", { tool_call_id: "c1", result: { ok: true } }))).toEqual([
      {
        kind: "update",
        update: {
          sessionUpdate: "tool_call_update",
          toolCallId: "c1",
          status: "completed",
          rawOutput: { ok: true },
          content: [{ type: "content", content: { type: "text", text: '{\n  "ok": true\n}' } }],
        },
      },
    ]);
    expect(last(start, d("tool_result", { tool_call_id: "c1", result: "no", is_error: true }))).toMatchObject([{ update: { status: "failed", rawOutput: "no" } }]);
    expect(last(start, d("tool_error", { tool_call_id: "c1", message: "denied" }))).toEqual([
      {
        kind: "update",
        update: { sessionUpdate: "tool_call_update", toolCallId: "c1", status: "failed", rawOutput: { error: "denied" }, content: [{ type: "content", content: { type: "text", text: "denied" } }] },
      },
    ]);
  });

  it("events without a tool_call_id attach to the last tool call; a result for an unknown call announces it", () => {
    expect(last(d("tool_call_start", { tool_call_id: "c9", name: "grep" }), d("tool_result", { result: "x" }))).toMatchObject([{ update: { sessionUpdate: "tool_call_update", toolCallId: "c9" } }]);
    expect(run(d("tool_result", { name: "grep", result: "x" }))).toMatchObject([
      { update: { sessionUpdate: "tool_call", toolCallId: "podium-tool-1", title: "grep", kind: "search", status: "completed", rawOutput: "x" } },
    ]);
  });

  it("a permission request for an unannounced call announces it first; for a known call it points at it", () => {
    const fresh = run(d("permission_requested", { request_id: "r1", name: "bash", description: "Run ls", args: { cmd: "ls" } }));
    expect(fresh).toEqual([
      {
        kind: "permission",
        requestId: "r1",
        key: "bash",
        toolCall: { toolCallId: "podium-permission-r1", title: "Run ls", rawInput: { cmd: "ls" } },
        announce: { sessionUpdate: "tool_call", toolCallId: "podium-permission-r1", title: "Run ls", name: "bash", kind: "execute", status: "pending", rawInput: { cmd: "ls" } },
      },
    ]);
    const known = last(d("tool_call", { tool_call_id: "c1", name: "bash", args: {} }), d("permission_requested", { request_id: "r2", tool_call_id: "c1", name: "bash" }));
    expect(known).toEqual([{ kind: "permission", requestId: "r2", key: "bash", toolCall: { toolCallId: "c1", title: "Allow bash?" } }]);
    expect(run(d("permission_requested", {}))).toEqual([]);
  });

  it("usage: the context window from usage_context, token counts and the cumulative cost from usage_update", () => {
    const mapper = new AcpMapper();
    mapper.map(d("usage_context", { total_tokens: 100, context_window: 8000 }));
    expect(mapper.map(d("usage_update", { input_tokens: 150, output_tokens: 30, cost: 0.5 }))).toEqual([
      { kind: "update", update: { sessionUpdate: "usage_update", used: 180, size: 8000, cost: { amount: 0.5, currency: "USD" } } },
    ]);
    expect(mapper.map(d("usage_update", { input_tokens: 200, output_tokens: 10, cost: 0.25 }))).toEqual([
      { kind: "update", update: { sessionUpdate: "usage_update", used: 210, size: 8000, cost: { amount: 0.75, currency: "USD" } } },
    ]);
  });

  it("usage: used never goes down within a session, whichever event reports it", () => {
    const mapper = new AcpMapper();
    const used = (draft: ReturnType<typeof d>) => mapper.map(draft).map((a) => (a.kind === "update" && a.update.sessionUpdate === "usage_update" ? a.update.used : undefined));
    expect(used(d("usage_context", { total_tokens: 400, context_window: 8000 }))).toEqual([400]);
    expect(used(d("usage_update", { input_tokens: 120, output_tokens: 80 }))).toEqual([400]); // one call's tokens: not a drop
    expect(used(d("usage_update", { input_tokens: 450, output_tokens: 50 }))).toEqual([500]);
    expect(used(d("usage_context", { total_tokens: 300, context_window: 8000 }))).toEqual([500]);
  });

  it("a streamed turn does not repeat its text at turn_complete; the next turn starts fresh", () => {
    const mapper = new AcpMapper();
    mapper.map(d("text_delta", { text: "streamed" }));
    expect(mapper.map(d("turn_complete", { text: "streamed" }))).toEqual([{ kind: "turn_end", stopReason: "end_turn" }]);
    expect(mapper.map(d("turn_complete", { text: "whole" }))[0]).toMatchObject({ update: { sessionUpdate: "agent_message_chunk" } });
  });

  it("works on the translator's output (Podium event -> client event -> ACP)", () => {
    const mapper = new AcpMapper();
    const input: PodiumEventInput[] = [
      { messageType: "stream_update", content: { text: "a" } },
      { messageType: "thinking_update", content: { delta: "b" } },
      { messageType: "tool.call", content: { id: 7, tool_name: "Bash", arguments: '{"cmd":"ls"}' } },
      { messageType: "stream_end" },
    ];
    const actions = input.flatMap((event) => mapPodiumEvent(event).flatMap((draft) => mapper.map(draft)));
    expect(actions).toEqual([
      { kind: "update", update: { sessionUpdate: "agent_message_chunk", content: { type: "text", text: "a" } } },
      { kind: "update", update: { sessionUpdate: "agent_thought_chunk", content: { type: "text", text: "b" } } },
      { kind: "update", update: { sessionUpdate: "tool_call", toolCallId: "7", title: "Bash", name: "Bash", kind: "execute", status: "in_progress", rawInput: { cmd: "ls" } } },
      { kind: "turn_end", stopReason: "end_turn" },
    ]);
  });
});

describe("toolKind and displayText", () => {
  it.each([
    ["read_file", "read"],
    ["str_replace_editor", "edit"],
    ["delete_file", "delete"],
    ["grep", "search"],
    ["web_fetch", "fetch"],
    ["bash", "execute"],
    ["think", "think"],
    ["mystery", "other"],
  ])("%s -> %s", (name, kind) => {
    expect(toolKind(name)).toBe(kind);
  });

  it("shows strings as is and other values as JSON", () => {
    expect(displayText("plain")).toBe("plain");
    expect(displayText({ text: "wrapped" })).toBe("wrapped");
    expect(displayText([1, 2])).toBe("[\n  1,\n  2\n]");
    expect(displayText(null)).toBe("");
  });
});

describe("promptContent", () => {
  const meta = { sessionId: "agent-1", cwd: "/w", mcpServers: [{ name: "fs", command: "/bin/mcp", args: [], env: [] }] };

  it("concatenates text blocks and carries the session metadata", () => {
    expect(
      promptContent(
        [
          { type: "text", text: "Fix " },
          { type: "text", text: "it" },
        ],
        meta,
      ),
    ).toEqual({
      text: "Fix it",
      acp: { session_id: "agent-1", cwd: "/w", mcp_servers: [{ name: "fs", command: "/bin/mcp", args: [], env: [] }] },
    });
  });

  it("inlines resource links and embedded text resources, and keeps the blocks", () => {
    const content = promptContent(
      [
        { type: "text", text: "Read " },
        { type: "resource_link", name: "a.ts", uri: "file:///w/a.ts" },
        { type: "resource", resource: { uri: "file:///w/b.ts", text: "let b = 1;" } },
      ],
      meta,
    );
    expect(content.text).toBe('Read [a.ts](file:///w/a.ts)\n<resource uri="file:///w/b.ts">\nlet b = 1;\n</resource>\n');
    expect((content.acp as JsonObject).prompt).toHaveLength(3);
  });

  it("refuses images (not advertised)", () => {
    expect(() => promptContent([{ type: "image", data: "AAAA", mimeType: "image/png" }], meta)).toThrow(/not supported/);
  });
});
