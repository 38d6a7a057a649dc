import { describe, it, expect } from "@jest/globals";
import { mapPodiumEvent, PODIUM_EVENT_MAPPINGS } from "../../services/translator/map-event.js";
import type { JsonObject } from "../../services/shared/json.js";

type Row = [podiumType: string, content: JsonObject | undefined, clientType: string, data: JsonObject];

/** One row per row (and alias) of the platform-services event tables. */
const SEED_ROWS: Row[] = [
  // Turn lifecycle
  ["created", undefined, "turn_started", {}],
  ["stream_start", { turnId: 7 }, "turn_started", { turn_id: "7" }],
  ["update", { text: "Hel" }, "text_delta", { text: "Hel" }],
  ["stream_update", { text: "lo" }, "text_delta", { text: "lo" }],
  ["complete", {}, "turn_complete", {}],
  ["stream_end", { stopReason: "end_turn" }, "turn_complete", { stop_reason: "end_turn" }],
  ["stream_complete", { text: "Hello" }, "turn_complete", { text: "Hello" }],
  ["error", { message: "boom", code: "resource_exhausted" }, "turn_error", { message: "boom", code: "resource_exhausted" }],
  // Tools
  ["tool.call_start", { toolCallId: "c1", name: "bash" }, "tool_call_start", { tool_call_id: "c1", name: "bash" }],
  ["tool.call_delta", { tool_call_id: "c1", delta: '{"cmd":' }, "tool_call_delta", { tool_call_id: "c1", delta: '{"cmd":' }],
  ["tool.call", { id: "c1", name: "bash", args: { cmd: "ls" } }, "tool_call", { tool_call_id: "c1", name: "bash", args: { cmd: "ls" } }],
  ["tool.result", { toolCallId: "c1", result: "a.txt", isError: false }, "tool_result", { tool_call_id: "c1", result: "a.txt", is_error: false }],
  ["tool.error", { toolCallId: "c1", error: "not found" }, "tool_error", { tool_call_id: "c1", message: "not found" }],
  // Interactive
  ["tool.question_requested", { request_id: "q1", question: "Which file?", options: ["a", "b"] }, "question_requested", { request_id: "q1", question: "Which file?", options: ["a", "b"] }],
  [
    "tool.permission_requested",
    { requestId: "p1", toolName: "bash", description: "rm -rf build", args: { cmd: "rm -rf build" } },
    "permission_requested",
    { request_id: "p1", name: "bash", description: "rm -rf build", args: { cmd: "rm -rf build" } },
  ],
  ["tool.approval_resolved", { request_id: "p1", approved: true }, "approval_resolved", { request_id: "p1", approved: true }],
  // Thinking
  ["thinking.start", {}, "thinking_start", {}],
  ["thinking.progress", { text: "Let me" }, "thinking_progress", { text: "Let me" }],
  ["thinking_update", { delta: " think" }, "thinking_progress", { text: " think" }],
  ["thinking.complete", { durationMs: 1200 }, "thinking_complete", { duration_ms: 1200 }],
  // Terminal
  ["terminal.stream", { terminalId: "t1", stream: "stdout", data: "ok\n" }, "terminal_stream", { terminal_id: "t1", stream: "stdout", data: "ok\n" }],
  ["terminal.complete", { terminal_id: "t1", exitCode: 2 }, "terminal_complete", { terminal_id: "t1", exit_code: 2 }],
  // Sandbox
  ["sandbox.provisioning", { message: "pulling image" }, "sandbox_provisioning", { message: "pulling image" }],
  ["sandbox.init", { sandboxId: "sb1" }, "sandbox_ready", { sandbox_id: "sb1" }],
  ["sandbox.removed", { sandbox_id: "sb1", reason: "idle" }, "sandbox_removed", { sandbox_id: "sb1", reason: "idle" }],
  // Session lifecycle (the coordinator's own payloads)
  ["terminating", { grace_ms: 5000 }, "session_state", { state: "terminated", grace_ms: 5000 }],
  ["terminated", { reason: "stopped", exit_code: 0, signal: null }, "session_state", { state: "terminated", reason: "stopped", exit_code: 0 }],
  // Usage
  ["usage", { inputTokens: 120, outputTokens: 30, model: "m-1", cost: 0.0012 }, "usage_update", { input_tokens: 120, output_tokens: 30, model: "m-1", cost: 0.0012 }],
  ["usage.update", { input_tokens: 5, output_tokens: 6 }, "usage_update", { input_tokens: 5, output_tokens: 6 }],
  ["context", { totalTokens: 9000, contextWindow: 200000 }, "usage_context", { total_tokens: 9000, context_window: 200000 }],
  ["usage.context", { total_tokens: 1, context_window: 2, model: "m-1" }, "usage_context", { total_tokens: 1, context_window: 2, model: "m-1" }],
  // Podium-native, passed through verbatim
  ["state.delta", { version: 3, patch: [{ op: "replace", path: "/n", value: 1 }] }, "state_delta", { version: 3, patch: [{ op: "replace", path: "/n", value: 1 }] }],
  ["workspace.changed", { iteration: 4, files: ["a.txt"] }, "workspace_changed", { iteration: 4, files: ["a.txt"] }],
  ["hibernated", { idle_ms: 400, exit_code: 0, signal: null }, "hibernated", { idle_ms: 400, exit_code: 0, signal: null }],
  ["woke", { hibernated_ms: 1200 }, "woke", { hibernated_ms: 1200 }],
  ["schedule.fired", { id: "sch_1", due_at: "2026-12-06T10:00:00.000Z", turn: 9 }, "schedule_fired", { id: "sch_1", due_at: "2026-12-06T10:00:00.000Z", turn: 9 }],
];

describe("mapPodiumEvent: the event tables", () => {
  it.each(SEED_ROWS)("%s %j -> %s %j", (podiumType, content, clientType, data) => {
    const input = content === undefined ? { messageType: podiumType } : { messageType: podiumType, content };
    expect(mapPodiumEvent(input)).toEqual([{ type: clientType, data }]);
  });

  it("covers every mapping in the table, and the table has nothing the tests do not cover", () => {
    const tested = new Set(SEED_ROWS.map(([podiumType]) => podiumType));
    expect([...PODIUM_EVENT_MAPPINGS.keys()].sort()).toEqual([...tested].sort());
  });

  it("carries agentId through", () => {
    expect(mapPodiumEvent({ messageType: "update", content: { text: "x" }, agentId: "a-1" })).toEqual([{ type: "text_delta", data: { text: "x" }, agentId: "a-1" }]);
  });
});

describe("mapPodiumEvent: fallbacks", () => {
  it("an unknown type with text content becomes text_delta", () => {
    expect(mapPodiumEvent({ messageType: "assistant.say", content: { text: "hi", extra: 1 } })).toEqual([{ type: "text_delta", data: { text: "hi" } }]);
  });

  it("an unknown type without content is dropped", () => {
    expect(mapPodiumEvent({ messageType: "heartbeat" })).toEqual([]);
  });

  it("an unknown type whose content has no string text is dropped", () => {
    expect(mapPodiumEvent({ messageType: "heartbeat", content: { text: 5 } })).toEqual([]);
    expect(mapPodiumEvent({ messageType: "heartbeat", content: {} })).toEqual([]);
  });

  it("prototype keys are not message types", () => {
    expect(mapPodiumEvent({ messageType: "constructor" })).toEqual([]);
    expect(mapPodiumEvent({ messageType: "__proto__" })).toEqual([]);
  });
});

describe("mapPodiumEvent: liberal in, strict out", () => {
  const CASES: Array<[string, JsonObject | undefined, JsonObject]> = [
    ["update", undefined, { text: "" }],
    ["update", { delta: "d" }, { text: "d" }],
    ["error", undefined, { message: "unknown error" }],
    ["error", { error: { message: "nested" } }, { message: "nested" }],
    ["tool.call", { callId: 9, toolName: "grep", arguments: '{"q":"x"}' }, { tool_call_id: "9", name: "grep", args: { q: "x" } }],
    ["tool.call", { tool_call_id: "c", name: "n" }, { tool_call_id: "c", name: "n", args: {} }],
    ["tool.result", { tool_call_id: "c", output: { lines: 3 }, is_error: "true" }, { tool_call_id: "c", result: { lines: 3 }, is_error: true }],
    ["terminal.complete", { code: "0" }, { exit_code: 0 }],
    ["terminal.complete", { exit_code: null, signal: "SIGKILL" }, { exit_code: null, signal: "SIGKILL" }],
    ["terminal.complete", undefined, { exit_code: null }],
    ["usage", { prompt_tokens: "10", completion_tokens: 2, cost_usd: 0.5 }, { input_tokens: 10, output_tokens: 2, cost: 0.5 }],
    ["usage", { input_tokens: -1, output_tokens: "many" }, { input_tokens: 0, output_tokens: 0 }],
    ["usage.context", undefined, { total_tokens: 0 }],
    ["terminated", { state: "running" }, { state: "terminated" }],
    ["tool.call_start", { toolCallId: "", tool_call_id: "c2" }, { tool_call_id: "c2" }],
    ["thinking.start", { anything: true }, {}],
  ];
  it.each(CASES)("%s %j -> %j", (messageType, content, data) => {
    const input = content === undefined ? { messageType } : { messageType, content };
    const [event] = mapPodiumEvent(input);
    expect(event?.data).toEqual(data);
  });

  it("is pure: the input is not modified and outputs share nothing with it", () => {
    const content: JsonObject = { version: 1, patch: [{ op: "add", path: "/a", value: { b: 1 } }] };
    const before = structuredClone(content);
    const [event] = mapPodiumEvent({ messageType: "state.delta", content });
    expect(content).toEqual(before);
    (event?.data.patch as JsonObject[]).push({ op: "remove", path: "/a" });
    expect(content).toEqual(before);
    const args = { cmd: "ls" };
    expect(mapPodiumEvent({ messageType: "tool.call", content: { args } })[0]?.data.args).not.toBe(args);
    expect(mapPodiumEvent({ messageType: "tool.call", content: { name: "x" } })[0]?.data.args).not.toBe(mapPodiumEvent({ messageType: "tool.call", content: { name: "y" } })[0]?.data.args);
  });
});
