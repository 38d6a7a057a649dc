/**
 * The agent protocol's one definition (proto/podium/agent/v1/agent-protocol.schema.json) and what is generated
 * from it: the committed modules are what the generator writes now, and the coordinator's validator (the
 * generated decoder behind parseAgentFrame) keeps valid frames as they were sent, tolerates what the schema
 * says it tolerates, and rejects the rest with the property named.
 */
import { describe, expect, it } from "@jest/globals";
import fs from "node:fs";
import path from "node:path";
import { agentProtocolOutputs } from "../../scripts/generate-agent-protocol.js";
import { FrameError, parseAgentFrame } from "../../services/coordinator/agent-protocol.js";
import { REPO_ROOT } from "../../services/coordinator/runtime-commands.js";
import { decodeAgentToHost, decodeHostToAgent } from "../../sdk/typescript/src/protocol.gen.js";

const line = (frame: object) => JSON.stringify(frame);

describe("generated protocol modules", () => {
  it("are committed as the schema generates them (npm run generate)", () => {
    const outputs = agentProtocolOutputs(REPO_ROOT);
    expect([...outputs.keys()].sort()).toEqual(["sdk/python/podium_agent/protocol.py", "sdk/typescript/src/protocol.gen.ts"]);
    for (const [file, content] of outputs) expect({ file, same: fs.readFileSync(path.join(REPO_ROOT, file), "utf8") === content }).toEqual({ file, same: true });
  });
});

describe("parseAgentFrame", () => {
  it("decodes every frame the SDKs send to exactly what they sent", () => {
    const frames = [
      { type: "ready", protocol: 1, runtime: "python", sdk: "podium-py/0.1.0" },
      { type: "event", turn: 3, messageType: "stream_update", content: { text: "hi", nested: { a: [1, null] } } },
      { type: "event", turn: 0, messageType: "stream_end" },
      {
        type: "state_patch",
        turn: 2,
        ops: [
          { op: "replace", path: "", value: { a: 1 } },
          { op: "add", path: "/b", value: null },
          { op: "remove", path: "/a" },
          { op: "move", from: "/x", path: "/y" },
          { op: "copy", from: "/x", path: "/z" },
          { op: "test", path: "/y", value: 2 },
        ],
      },
      { type: "log", level: "warn", message: "careful", fields: { turn: 4 } },
      { type: "turn_done", turn: 5 },
      { type: "turn_done", turn: 6, error: { message: "Error: boom", stack: "Error: boom\n    at x" } },
      { type: "stopped" },
      { type: "fatal", error: { message: "cannot import" } },
      { type: "schedule", id: "r1", op: "create", when: { delay_ms: 10 }, message: { text: "later" } },
      { type: "schedule", id: "r2", op: "cancel", scheduleId: "s1" },
      { type: "schedule", id: "r3", op: "list" },
    ];
    for (const frame of frames) expect(parseAgentFrame(line(frame))).toEqual(frame);
  });

  it("keeps the ops array as sent (no copy of a large patch) and drops properties the schema does not name", () => {
    const ops = Array.from({ length: 1000 }, (_, i) => ({ op: "add", path: `/${i}`, value: i }));
    const patch = decodeAgentToHost({ type: "state_patch", turn: 1, ops });
    expect(patch.type === "state_patch" && patch.ops).toBe(ops);
    const parsed = parseAgentFrame(line({ type: "event", turn: 1, messageType: "x", extra: true, content: { kept: 1 } }));
    expect(parsed).toEqual({ type: "event", turn: 1, messageType: "x", content: { kept: 1 } });
    expect(Object.keys(parsed)).toEqual(["type", "turn", "messageType", "content"]);
  });

  it("fills in what the schema defaults and leaves out what it tolerates", () => {
    expect(parseAgentFrame(line({ type: "ready", protocol: 2, runtime: "typescript" }))).toEqual({ type: "ready", protocol: 2, runtime: "typescript", sdk: "" });
    expect(parseAgentFrame(line({ type: "log", level: "loud", message: "m", fields: "not an object" }))).toEqual({ type: "log", level: "info", message: "m" });
    expect(parseAgentFrame(line({ type: "event", turn: 1, messageType: "x", content: null }))).toEqual({ type: "event", turn: 1, messageType: "x" });
    expect(parseAgentFrame(line({ type: "turn_done", turn: 1, error: null }))).toEqual({ type: "turn_done", turn: 1 });
    expect(parseAgentFrame(line({ type: "turn_done", turn: 1, error: { message: "m", stack: 7 } }))).toEqual({ type: "turn_done", turn: 1, error: { message: "m" } });
    expect(parseAgentFrame(line({ type: "fatal" }))).toEqual({ type: "fatal", error: { message: "agent failed to start" } });
    expect(parseAgentFrame(line({ type: "schedule", id: "r", op: "create", when: {} }))).toEqual({ type: "schedule", id: "r", op: "create", when: {}, message: {} });
  });

  it("rejects malformed frames, naming the property", () => {
    const cases: [string, string][] = [
      ["{not json", "frame is not valid JSON"],
      [line([1]), "frame has no type"],
      [line({ type: 3 }), "frame has no type"],
      [line({ type: "teleport" }), 'unknown frame type "teleport"'],
      [line({ type: "ready", protocol: -1, runtime: "python" }), "ready.protocol must be a non-negative integer"],
      [line({ type: "ready", protocol: 1, runtime: "cobol" }), 'ready.runtime must be one of "python", "typescript"'],
      [line({ type: "event", turn: 1.5, messageType: "x" }), "event.turn must be a non-negative integer"],
      [line({ type: "event", turn: 1, messageType: "" }), "event.messageType must be a string of 1-128 characters"],
      [line({ type: "event", turn: 1, messageType: "x".repeat(129) }), "event.messageType must be a string of 1-128 characters"],
      [line({ type: "event", turn: 1, messageType: "x", content: [1] }), "event.content must be an object"],
      [line({ type: "state_patch", turn: 1, ops: {} }), "state_patch.ops must be an array"],
      [
        line({
          type: "state_patch",
          turn: 1,
          ops: [
            { op: "add", path: "/a", value: 1 },
            { op: "add", path: "/b" },
          ],
        }),
        "state_patch.ops[1].value is required",
      ],
      [line({ type: "state_patch", turn: 1, ops: [{ op: "move", path: "/a" }] }), "state_patch.ops[0].from must be a string"],
      [line({ type: "state_patch", turn: 1, ops: [{ op: "explode", path: "/a" }] }), 'state_patch.ops[0].op must be one of "add", "remove", "replace", "move", "copy", "test"'],
      [line({ type: "state_patch", turn: 1, ops: [7] }), "state_patch.ops[0] must be an object"],
      [line({ type: "log", level: "info" }), "log.message must be a string"],
      [line({ type: "turn_done", turn: 1, error: "boom" }), "turn_done.error must be an object"],
      [line({ type: "turn_done", turn: 1, error: {} }), "turn_done.error.message must be a string"],
      [line({ type: "schedule", id: "r", op: "delete" }), 'schedule.op must be one of "create", "cancel", "list"'],
      [line({ type: "schedule", id: "", op: "list" }), "schedule.id must be a string of 1-128 characters"],
      [line({ type: "schedule", id: "r", op: "cancel" }), "schedule.scheduleId must be a string of 1-128 characters"],
      [line({ type: "schedule", id: "r", op: "create", when: "soon" }), "schedule.when must be an object"],
      [line({ type: "schedule", id: "r", op: "create", when: {}, message: [] }), "schedule.message must be an object"],
    ];
    for (const [text, message] of cases) {
      let thrown: unknown;
      try {
        parseAgentFrame(text);
      } catch (err) {
        thrown = err;
      }
      expect({ text, thrown }).toEqual({ text, thrown: new FrameError(message) });
      expect(thrown).toBeInstanceOf(FrameError);
    }
  });

  it("rejects a frame nested deeper than clients may nest", () => {
    let content: object = {};
    for (let i = 0; i < 200; i++) content = { a: content };
    expect(() => parseAgentFrame(line({ type: "event", turn: 1, messageType: "x", content }))).toThrow(/frame nests deeper than/);
  });
});

describe("decodeHostToAgent (the TypeScript SDK's decoder)", () => {
  it("decodes init with defaults for what a host may leave out, keeping only string env values", () => {
    expect(decodeHostToAgent({ type: "init", protocol: 1, env: { A: "1", B: 2 }, entry: "" })).toEqual({
      type: "init",
      protocol: 1,
      instanceId: "",
      agentId: "",
      deploymentId: "",
      workspace: "",
      env: { A: "1" },
      state: {},
      stateVersion: 0,
    });
    expect(decodeHostToAgent({ type: "stop", hibernate: false })).toEqual({ type: "stop", graceMs: 5000 });
    expect(decodeHostToAgent({ type: "stop", graceMs: 100, hibernate: true })).toEqual({ type: "stop", graceMs: 100, hibernate: true });
    expect(decodeHostToAgent({ type: "answer", id: "q" })).toEqual({ type: "answer", id: "q", value: null });
    expect(decodeHostToAgent({ type: "message", turn: 4 })).toEqual({ type: "message", turn: 4, content: {} });
    expect(() => decodeHostToAgent({ type: "cancel" })).toThrow("cancel.turn must be a non-negative integer");
    expect(() => decodeHostToAgent({ type: "init", protocol: 2 })).toThrow("init.protocol must be 1");
  });
});
