/**
 * Both agent runners (sdk/typescript, sdk/python) against the protocol in
 * services/coordinator/agent-protocol.ts, as real child processes.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import fs from "node:fs";
import path from "node:path";
import { AgentHarness, example, fixture, REPO_ROOT, replayState, RUNTIMES, type EventFrame, type Runtime } from "./agent-harness.js";
import type { AgentToHost } from "../../services/coordinator/agent-protocol.js";
import type { JsonObject } from "../../services/shared/json.js";

const PROBE: Record<Runtime, string> = { typescript: fixture("ts/probe.ts"), python: fixture("py/probe.py") };
const BROKEN: Record<Runtime, string> = { typescript: fixture("ts/broken.ts"), python: fixture("py/broken.py") };
const ECHO: Record<Runtime, string> = { typescript: example("echo-ts", "agent.ts"), python: example("echo-py", "agent.py") };

/** Final state of probe's scripted sequence (the same in both languages), after onStart and init. */
const SCRIPTED: JsonObject = {
  counter: 3,
  items: [1, 4, 9],
  agent: "agent-test",
  starts: 1,
  user: { name: "Ada", tags: ["a", "b", "c"], "we/ird~key": 1 },
  list: [{ n: 20 }, { n: 99 }, { n: 30 }],
  nested: {},
  copied: { v: 1 },
  unicode: "héllo ✓ 😀 \u2028",
  lone: "\ud800 lone surrogate",
  nothing: null,
  flag: false,
  ratio: 1.5,
  sparse: [1, null, null, 4],
  matrix: [[1], [2, 3]],
};

const open: AgentHarness[] = [];
function spawn(runtime: Runtime, entry = PROBE[runtime]): AgentHarness {
  const agent = AgentHarness.spawn({ runtime, entry, env: { PODIUM_TEST: "1" } });
  open.push(agent);
  return agent;
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((agent) => agent.close()));
});

function types(events: EventFrame[]): string[] {
  return events.map((e) => e.messageType);
}

async function reportedState(agent: AgentHarness, turn: number): Promise<unknown> {
  const { events } = await agent.turn(turn, { cmd: "state" });
  return events.find((e) => e.messageType === "state")?.content?.state;
}

describe.each(RUNTIMES)("%s runner", (runtime) => {
  it("seeds the initial state, runs onStart, then says ready", async () => {
    const agent = spawn(runtime);
    const ready = await agent.start();
    expect(ready).toEqual({ type: "ready", protocol: 1, runtime, sdk: expect.stringContaining(runtime === "python" ? "podium-py" : "podium-ts") });
    const [seed, started] = agent.frames;
    expect(seed).toEqual({ type: "state_patch", turn: 0, ops: [{ op: "replace", path: "", value: { counter: 0, items: [], agent: "agent-test" } }] });
    expect(started).toEqual({ type: "state_patch", turn: 0, ops: [{ op: "add", path: "/starts", value: 1 }] });
    expect(agent.frames[2]).toBe(ready);
    expect(agent.badLines).toEqual([]);
  });

  it("streams the echo example in order and counts turns in state", async () => {
    const agent = spawn(runtime, ECHO[runtime]);
    await agent.start();
    const text = "hello  big world ";
    const first = await agent.turn(1, { text });
    expect(types(first.events)).toEqual(["stream_start", "stream_update", "stream_update", "stream_update", "stream_update", "stream_update", "stream_end"]);
    const chunks = first.events.filter((e) => e.messageType === "stream_update").map((e) => e.content?.text);
    expect(chunks.join("")).toBe(text);
    expect(first.patches).toEqual([{ type: "state_patch", turn: 1, ops: [{ op: "replace", path: "/turns", value: 1 }] }]);
    expect(first.done).toEqual({ type: "turn_done", turn: 1 });
    const second = await agent.turn(2, { text: "again" });
    expect(second.events.map((e) => e.content?.text).filter(Boolean)).toEqual(["again"]);
    expect(replayState({}, agent.frames)).toEqual({ turns: 2 });
    // patch before turn_done, all frames of a turn tagged with it
    const order = agent.frames.filter((f) => "turn" in f && f.turn === 2).map((f) => f.type);
    expect(order.slice(-2)).toEqual(["state_patch", "turn_done"]);
  });

  it("ends a turn whose handler emits nothing", async () => {
    const agent = spawn(runtime);
    await agent.start();
    const turn = await agent.turn(7, { cmd: "silent" });
    expect(turn.events).toEqual([]);
    expect(turn.patches).toEqual([]);
    expect(turn.done).toEqual({ type: "turn_done", turn: 7 });
  });

  it("reports a throwing handler in turn_done and keeps serving", async () => {
    const agent = spawn(runtime);
    await agent.start();
    const failed = await agent.turn(1, { cmd: "throw" });
    expect(failed.done.error?.message).toContain("boom");
    expect(failed.done.error?.stack).toContain(runtime === "python" ? "probe.py" : "probe.ts");
    expect(failed.patches[0]?.ops).toEqual([{ op: "add", path: "/beforeThrow", value: true }]);
    const sync = await agent.turn(2, { cmd: "sync-throw" });
    expect(sync.done.error?.message).toContain("sync boom");
    const ok = await agent.turn(3, { cmd: "silent" });
    expect(ok.done.error).toBeUndefined();
  });

  it("turns a scripted sequence of mutations into patches that replay to the same state", async () => {
    const agent = spawn(runtime);
    await agent.start();
    const turn = await agent.turn(1, { cmd: "script" });
    expect(turn.patches).toHaveLength(1);
    const ops = turn.patches[0]?.ops ?? [];
    expect(ops).toContainEqual({ op: "add", path: "/user/we~1ird~0key", value: 1 });
    expect(ops).toContainEqual({ op: "replace", path: "/list/0/n", value: 20 });
    expect(ops.some((op) => op.path.startsWith("/nested/a/x"))).toBe(false);
    expect(ops.every((op) => !op.path.endsWith("/-"))).toBe(true);
    const state = await reportedState(agent, 2);
    expect(state).toEqual(SCRIPTED);
    expect(replayState({}, agent.frames)).toEqual(state);
  });

  it("replaces the whole state on assignment", async () => {
    const agent = spawn(runtime);
    await agent.start();
    const turn = await agent.turn(1, { cmd: "replace-root" });
    expect(turn.patches[0]?.ops).toEqual([
      { op: "replace", path: "", value: { replaced: true, counter: 0 } },
      { op: "add", path: "/after", value: 1 },
    ]);
    expect(await reportedState(agent, 2)).toEqual({ replaced: true, counter: 0, after: 1 });
  });

  it("keeps random mutation sequences in sync with their patches", async () => {
    const agent = spawn(runtime);
    await agent.start();
    let turn = 1;
    for (let seed = 1; seed <= 10; seed++) {
      await agent.turn(turn++, { cmd: "random", seed, count: 40 });
      const state = await reportedState(agent, turn++);
      expect(replayState({}, agent.frames)).toEqual(state);
    }
    expect(agent.frames.filter((f) => f.type === "state_patch" && f.turn > 0).length).toBeLessThanOrEqual(10);
  });

  it("resumes from a stored state without re-seeding it", async () => {
    const agent = spawn(runtime);
    const stored = { counter: 41, items: [1], note: "kept" };
    await agent.start({ state: stored, stateVersion: 7 });
    const patches = agent.frames.filter((f) => f.type === "state_patch");
    expect(patches).toEqual([{ type: "state_patch", turn: 0, ops: [{ op: "add", path: "/starts", value: 1 }] }]);
    expect(await reportedState(agent, 8)).toEqual({ ...stored, starts: 1 });
  });

  it("passes ids, env and workspace through ctx", async () => {
    const agent = spawn(runtime);
    await agent.start({ env: { API_KEY: "secret", MODE: "test" } });
    const { events } = await agent.turn(1, { cmd: "info" });
    expect(events[0]?.content).toEqual({
      instanceId: "inst-test",
      agentId: "agent-test",
      workspace: agent.workspace,
      cwd: expect.stringContaining(agent.workspace.split("/").pop() ?? "?"),
      env: { API_KEY: "secret", MODE: "test" },
      turn: 1,
    });
  });

  it("exposes the turn's W3C trace context on ctx, and nothing for a message without one", async () => {
    const agent = spawn(runtime);
    await agent.start();
    const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const traced = await agent.turn(1, { cmd: "trace" }, 15_000, { traceparent, tracestate: "congo=t61rcWkgMzE" });
    expect(traced.events[0]?.content).toEqual({ traceparent, tracestate: "congo=t61rcWkgMzE" });
    const plain = await agent.turn(2, { cmd: "trace" });
    expect(plain.events[0]?.content).toEqual({ traceparent: null, tracestate: null });
  });

  it("aborts the running turn on cancel", async () => {
    const agent = spawn(runtime);
    await agent.start();
    agent.send({ type: "message", turn: 1, content: { cmd: "wait-cancel" } });
    await agent.waitFor((f) => f.type === "event" && f.messageType === "waiting");
    agent.send({ type: "cancel", turn: 2 }); // another turn: ignored
    agent.send({ type: "cancel", turn: 1 });
    const done = await agent.waitFor((f) => f.type === "turn_done" && f.turn === 1);
    expect(done).toEqual({ type: "turn_done", turn: 1 });
    const cancelled = agent.frames.find((f): f is EventFrame => f.type === "event" && f.messageType === "cancelled");
    expect(cancelled?.content).toEqual({ aborted: true });
  });

  it("round-trips ask and requestPermission through answer frames", async () => {
    const agent = spawn(runtime);
    await agent.start();
    agent.send({ type: "message", turn: 1, content: { cmd: "ask" } });
    const asked = (await agent.waitFor((f) => f.type === "event" && f.messageType === "tool.question_requested")) as EventFrame;
    expect(asked.content).toEqual({ request_id: expect.any(String), question: "favourite colour?", choices: ["red", "blue"], hint: "pick one" });
    agent.send({ type: "answer", id: "not-a-request", value: "ignored" });
    agent.send({ type: "answer", id: String(asked.content?.request_id), value: { colour: "blue" } });
    await agent.waitFor((f) => f.type === "turn_done" && f.turn === 1);
    const answered = agent.frames.find((f): f is EventFrame => f.type === "event" && f.messageType === "answered");
    expect(answered?.content).toEqual({ answer: { colour: "blue" } });

    agent.send({ type: "message", turn: 2, content: { cmd: "permission" } });
    const request = (await agent.waitFor((f) => f.type === "event" && f.messageType === "tool.permission_requested")) as EventFrame;
    expect(request.content).toEqual({ tool: "rm", path: "/tmp/x", request_id: expect.any(String) });
    agent.send({ type: "answer", id: String(request.content?.request_id), value: true });
    const done = await agent.waitFor((f) => f.type === "turn_done" && f.turn === 2);
    expect(done).toEqual({ type: "turn_done", turn: 2 });
    expect(agent.frames.find((f) => f.type === "event" && f.messageType === "permitted")).toMatchObject({ content: { answer: true } });
  });

  it("fails a pending ask when its turn is cancelled", async () => {
    const agent = spawn(runtime);
    await agent.start();
    agent.send({ type: "message", turn: 1, content: { cmd: "ask-cancel" } });
    await agent.waitFor((f) => f.type === "event" && f.messageType === "tool.question_requested");
    agent.send({ type: "cancel", turn: 1 });
    const done = await agent.waitFor((f) => f.type === "turn_done");
    expect(done).toEqual({ type: "turn_done", turn: 1 }); // giving up on cancel is not an error
    expect(agent.frames.some((f) => f.type === "event" && f.messageType === "ask-failed")).toBe(true);
  });

  it("runs onStop on stop, flushes its state and exits 0 after `stopped`", async () => {
    const agent = spawn(runtime);
    await agent.start();
    await agent.turn(3, { cmd: "silent" });
    agent.send({ type: "stop", graceMs: 2000 });
    const exit = await agent.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    const tail = agent.frames.slice(-3);
    expect(tail).toEqual([
      { type: "event", turn: 3, messageType: "stopping", content: { turn: 3 } },
      { type: "state_patch", turn: 3, ops: [{ op: "add", path: "/stopped", value: true }] },
      { type: "stopped" },
    ]);
  });

  it("stops while a turn is running: the turn is aborted first", async () => {
    const agent = spawn(runtime);
    await agent.start();
    agent.send({ type: "message", turn: 1, content: { cmd: "wait-cancel" } });
    await agent.waitFor((f) => f.type === "event" && f.messageType === "waiting");
    agent.send({ type: "stop", graceMs: 4000 });
    expect(await agent.exited).toEqual({ code: 0, signal: null });
    const kinds = agent.frames.map((f) => (f.type === "event" ? f.messageType : f.type));
    expect(kinds.slice(kinds.indexOf("waiting"))).toEqual(["waiting", "cancelled", "state_patch", "turn_done", "stopping", "state_patch", "stopped"]);
  });

  it("treats EOF on stdin as stop", async () => {
    const agent = spawn(runtime);
    await agent.start();
    agent.endInput();
    expect(await agent.exited).toEqual({ code: 0, signal: null });
    expect(agent.frames.at(-1)).toEqual({ type: "stopped" });
  });

  it("sends fatal and exits 1 when the entry fails to import", async () => {
    const agent = spawn(runtime, BROKEN[runtime]);
    agent.init();
    const exit = await agent.exited;
    expect(exit.code).toBe(1);
    const fatal = agent.frames.find((f): f is Extract<AgentToHost, { type: "fatal" }> => f.type === "fatal");
    expect(fatal?.error.message).toMatch(runtime === "python" ? /this_module_does_not_exist/ : /broken at import/);
    expect(agent.frames.some((f) => f.type === "ready")).toBe(false);
  });

  it("keeps fd 3 clean while the agent prints to stdout and stderr", async () => {
    const agent = spawn(runtime);
    await agent.start();
    const turn = await agent.turn(1, { cmd: "print" });
    expect(turn.events.map((e) => e.content?.i)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(agent.badLines).toEqual([]);
    await agent.until(() => (agent.stdout.includes("noise 199") && agent.stderr.includes("stderr noise") ? true : undefined), 5000, "output");
  });

  it("delivers a burst of 20 000 small frames complete and in order", async () => {
    const agent = spawn(runtime);
    await agent.start();
    const count = 20_000;
    const turn = await agent.turn(1, { cmd: "burst", count });
    expect(turn.events).toHaveLength(count);
    expect(turn.events.every((e, i) => e.content?.i === i)).toBe(true);
    expect(agent.badLines).toEqual([]);
  });

  it("round-trips a 5 MB string in state", async () => {
    const agent = spawn(runtime);
    await agent.start();
    const size = 5 * 1024 * 1024;
    const turn = await agent.turn(1, { cmd: "big", size });
    expect(turn.patches[0]?.ops).toEqual([{ op: "add", path: "/big", value: "x".repeat(size) }]);
    const state = (await reportedState(agent, 2)) as JsonObject;
    expect(typeof state.big === "string" && state.big.length).toBe(size);
    expect(replayState({}, agent.frames)).toEqual(state);
  });

  it("rejects non-JSON state values with a TypeError and leaves the state alone", async () => {
    const agent = spawn(runtime);
    await agent.start();
    const turn = await agent.turn(1, { cmd: "invalid" });
    const { errors, keys } = turn.events[0]?.content as { errors: string[]; keys: string[] };
    expect(errors).toHaveLength(6);
    for (const error of errors) expect(error).toMatch(/^\w+: TypeError: invalid state value at \/\w+/);
    expect(keys).toEqual(["counter", "items", "agent", "starts"]);
    expect(turn.patches).toEqual([]);
  });

  it("sends ctx.log as structured log frames", async () => {
    const agent = spawn(runtime);
    await agent.start();
    await agent.turn(1, { cmd: "log" });
    const logs = agent.frames.filter((f) => f.type === "log");
    expect(logs).toEqual([
      { type: "log", level: "info", message: expect.stringMatching(/^hello \{.*a.*1.*\}$/), fields: { turn: 1 } },
      { type: "log", level: "warn", message: "careful", fields: { turn: 1 } },
    ]);
  });
});

describe("typescript runner: batched frames", () => {
  it("writes the first frames of a synchronous run at once; the rest of a long run follows in order", async () => {
    const agent = spawn("typescript");
    await agent.start();
    // The agent blocks its event loop after sending: what it sent must reach the host meanwhile (it waits for us).
    agent.send({ type: "message", turn: 1, content: { cmd: "send-then-block", count: 3 } });
    await agent.until(() => (agent.frames.filter((f) => f.type === "event").length === 3 ? true : undefined), 15_000, "the 3 events sent before blocking");
    fs.writeFileSync(path.join(agent.workspace, "go"), "");
    await agent.waitFor((f) => f.type === "turn_done" && f.turn === 1);
    // 500 events before blocking: the first ones go out at once, the batched rest when the run ends.
    agent.send({ type: "message", turn: 2, content: { cmd: "send-then-block", count: 500 } });
    await agent.until(() => (agent.frames.filter((f) => f.type === "event" && f.turn === 2).length >= 8 ? true : undefined), 15_000, "the run's first events");
    fs.writeFileSync(path.join(agent.workspace, "go"), "");
    const done = await agent.waitFor((f) => f.type === "turn_done" && f.turn === 2);
    expect(done).toEqual({ type: "turn_done", turn: 2 });
    const events = agent.frames.filter((f): f is EventFrame => f.type === "event" && f.turn === 2);
    expect(events.map((e) => e.content?.i ?? e.messageType)).toEqual([...Array.from({ length: 500 }, (_, i) => i), "after"]);
  });

  it("writes what a run batched when agent code calls process.exit", async () => {
    const agent = spawn("typescript");
    await agent.start();
    agent.send({ type: "message", turn: 1, content: { cmd: "send-then-exit", count: 300 } });
    expect((await agent.exited).code).toBe(0);
    expect(agent.frames.filter((f) => f.type === "event").map((e) => (e as EventFrame).content?.i)).toEqual(Array.from({ length: 300 }, (_, i) => i));
  });
});

describe("python runner: batched events", () => {
  it("writes every event it sent while the handler blocks (the flusher), in order, the first one at once", async () => {
    const agent = spawn("python");
    await agent.start();
    agent.send({ type: "message", turn: 1, content: { cmd: "send-then-block", count: 500 } });
    // The handler sleeps until we create `go`: its 500 events must all reach us meanwhile.
    await agent.until(() => (agent.frames.filter((f) => f.type === "event").length === 500 ? true : undefined), 15_000, "the 500 events sent before blocking");
    fs.writeFileSync(path.join(agent.workspace, "go"), "");
    await agent.waitFor((f) => f.type === "turn_done" && f.turn === 1);
    const events = agent.frames.filter((f): f is EventFrame => f.type === "event");
    expect(events.map((e) => e.content?.i ?? e.messageType)).toEqual([...Array.from({ length: 500 }, (_, i) => i), "after"]);
  });

  it("writes what was batched when agent code calls sys.exit", async () => {
    const agent = spawn("python");
    await agent.start();
    agent.send({ type: "message", turn: 1, content: { cmd: "send-then-exit", count: 300 } });
    await agent.exited;
    expect(agent.frames.filter((f) => f.type === "event").map((e) => (e as EventFrame).content?.i)).toEqual(Array.from({ length: 300 }, (_, i) => i));
  });
});

describe("examples", () => {
  const bundles = fs.readdirSync(path.join(REPO_ROOT, "examples")).filter((name) => fs.existsSync(path.join(REPO_ROOT, "examples", name, "podium.json")));

  it.each(bundles)("%s starts, answers a turn and stops cleanly", async (name) => {
    const manifest = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "examples", name, "podium.json"), "utf8")) as { runtime: Runtime; entry: string };
    const agent = spawn(manifest.runtime, example(name, manifest.entry));
    await agent.start();
    const turn = await agent.turn(1, { text: "hello world" });
    expect(turn.done.error).toBeUndefined();
    expect(turn.events.length).toBeGreaterThan(0);
    expect(turn.patches).toHaveLength(1);
    agent.send({ type: "stop", graceMs: 2000 });
    expect(await agent.exited).toEqual({ code: 0, signal: null });
    expect(agent.badLines).toEqual([]);
  });
});

describe("python async handlers", () => {
  const entry = fixture("py/probe_async.py");

  it("runs async on_start / on_message / on_stop", async () => {
    const agent = spawn("python", entry);
    await agent.start();
    expect(agent.frames.filter((f) => f.type === "state_patch")).toHaveLength(2);
    const slept = await agent.turn(1, { cmd: "sleep", ms: 20 });
    expect(types(slept.events)).toEqual(["slept"]);
    const failed = await agent.turn(2, { cmd: "throw" });
    expect(failed.done.error?.message).toBe("RuntimeError: boom");
    await agent.turn(3, { cmd: "script" });
    expect(replayState({}, agent.frames)).toEqual(await reportedState(agent, 4));
    agent.send({ type: "stop", graceMs: 2000 });
    expect(await agent.exited).toEqual({ code: 0, signal: null });
    expect(agent.frames.at(-1)).toEqual({ type: "stopped" });
  });

  it("cancels and answers while an async turn awaits", async () => {
    const agent = spawn("python", entry);
    await agent.start();
    agent.send({ type: "message", turn: 1, content: { cmd: "ask" } });
    const asked = (await agent.waitFor((f) => f.type === "event" && f.messageType === "tool.question_requested")) as EventFrame;
    agent.send({ type: "answer", id: String(asked.content?.request_id), value: "red" });
    await agent.waitFor((f) => f.type === "turn_done" && f.turn === 1);
    expect(agent.frames.find((f) => f.type === "event" && f.messageType === "answered")).toMatchObject({ content: { answer: "red" } });

    // ctx.ask() has one contract, in async handlers too: it blocks and returns the answer (a str, never an
    // awaitable), and the log says once to use ask_async there.
    agent.send({ type: "message", turn: 10, content: { cmd: "ask-blocking" } });
    const blocking = (await agent.waitFor((f) => f.type === "event" && f.messageType === "tool.question_requested" && f.turn === 10)) as EventFrame;
    agent.send({ type: "answer", id: String(blocking.content?.request_id), value: "yes" });
    await agent.waitFor((f) => f.type === "turn_done" && f.turn === 10);
    expect(agent.frames.find((f) => f.type === "event" && f.messageType === "answered" && f.turn === 10)).toMatchObject({ content: { answer: "yes", type: "str" } });
    expect(agent.frames.filter((f) => f.type === "log" && String((f as { message?: unknown }).message).includes("ask_async"))).toHaveLength(1);

    agent.send({ type: "message", turn: 2, content: { cmd: "ask-cancel" } });
    await agent.waitFor((f) => f.type === "event" && f.messageType === "tool.question_requested" && f.turn === 2);
    agent.send({ type: "cancel", turn: 2 });
    expect(await agent.waitFor((f) => f.type === "turn_done" && f.turn === 2)).toEqual({ type: "turn_done", turn: 2 });

    agent.send({ type: "message", turn: 3, content: { cmd: "wait-cancel" } });
    await agent.waitFor((f) => f.type === "event" && f.messageType === "waiting" && f.turn === 3);
    agent.send({ type: "cancel", turn: 3 });
    await agent.waitFor((f) => f.type === "turn_done" && f.turn === 3);
    expect(agent.frames.find((f) => f.type === "event" && f.messageType === "cancelled")).toMatchObject({ content: { aborted: true } });
  });
});
