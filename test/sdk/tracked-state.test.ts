/** The TypeScript SDK's state tracker in-process: every mutation's ops replay to the same state. */
import { describe, expect, it } from "@jest/globals";
import { spawnSync } from "node:child_process";
import { StateTracker } from "../../sdk/typescript/src/tracked-state.js";
import type { Json, JsonObject, JsonPatchOp } from "../../services/shared/json.js";
import { applyPatch } from "../../services/shared/json-patch.js";
import { fixture, REPO_ROOT, runtimeCommands } from "./agent-harness.js";
import { randomMutations } from "./fixtures/ts/random-mutations.js";

function ops(tracker: StateTracker): JsonPatchOp[] {
  const text = tracker.takeOps();
  return text === undefined ? [] : (JSON.parse(text) as JsonPatchOp[]);
}

function fresh(initial: JsonObject = {}): StateTracker {
  return new StateTracker(JSON.parse(JSON.stringify(initial)) as JsonObject);
}

const clone = (value: unknown): Json => JSON.parse(JSON.stringify(value)) as Json;

describe("StateTracker", () => {
  it("replays every single random mutation exactly (30 seeds x 300 steps)", () => {
    for (let seed = 1; seed <= 30; seed++) {
      const tracker = fresh({ counter: 0, items: [] });
      let mirror: Json = clone(tracker.raw);
      for (let step = 0; step < 300; step++) {
        randomMutations(tracker.state, seed * 1000 + step, 1);
        mirror = applyPatch(mirror, ops(tracker));
        if (JSON.stringify(mirror) !== JSON.stringify(tracker.raw)) {
          throw new Error(`seed ${seed} step ${step}: replay diverged\nreplayed ${JSON.stringify(mirror)}\nactual   ${JSON.stringify(tracker.raw)}`);
        }
      }
    }
  });

  it("records precise array ops", () => {
    const t = fresh({ a: [1, 2, 3] });
    const a = t.state.a as Json[];
    a.push(4, 5);
    expect(ops(t)).toEqual([
      { op: "add", path: "/a/3", value: 4 },
      { op: "add", path: "/a/4", value: 5 },
    ]);
    a.pop();
    a.shift();
    expect(ops(t)).toEqual([
      { op: "remove", path: "/a/4" },
      { op: "remove", path: "/a/0" },
    ]);
    a.splice(1, 1, "x", "y");
    expect(ops(t)).toEqual([
      { op: "replace", path: "/a/1", value: "x" },
      { op: "add", path: "/a/2", value: "y" },
    ]);
    expect(t.raw.a).toEqual([2, "x", "y", 4]);
    a.reverse();
    expect(ops(t)).toEqual([
      { op: "replace", path: "/a/0", value: 4 },
      { op: "replace", path: "/a/1", value: "y" },
      { op: "replace", path: "/a/2", value: "x" },
      { op: "replace", path: "/a/3", value: 2 },
    ]);
  });

  it("follows objects that moved inside arrays, and ignores detached ones", () => {
    const t = fresh({ list: [{ n: 1 }, { n: 2 }] });
    const list = t.state.list as JsonObject[];
    const second = list[1] as JsonObject;
    list.shift();
    ops(t);
    second.n = 20;
    expect(ops(t)).toEqual([{ op: "replace", path: "/list/0/n", value: 20 }]);
    const gone = list.pop() as JsonObject;
    ops(t);
    gone.n = 5;
    second.n = 21; // removed from the state too (it was popped)
    expect(ops(t)).toEqual([]);
    expect(t.raw).toEqual({ list: [] });
  });

  it("copies values in: later changes to the original are not state", () => {
    const t = fresh();
    const original = { deep: { v: 1 } };
    t.state.o = original;
    original.deep.v = 2;
    expect(t.raw).toEqual({ o: { deep: { v: 1 } } });
    t.state.p = t.state.o as JsonObject; // no aliasing either
    ((t.state.p as JsonObject).deep as JsonObject).v = 3;
    expect(t.raw).toEqual({ o: { deep: { v: 1 } }, p: { deep: { v: 3 } } });
  });

  it("collapses repeated writes to one path and drops ops superseded by a root replace", () => {
    const t = fresh({ n: 0 });
    for (let i = 0; i < 1000; i++) (t.state.n as number) += 1;
    expect(ops(t)).toEqual([{ op: "replace", path: "/n", value: 1000 }]);
    t.state.x = 1;
    t.state.x = 2;
    expect(ops(t)).toEqual([{ op: "add", path: "/x", value: 2 }]);
    t.state.y = 1;
    t.replace({ fresh: true });
    expect(ops(t)).toEqual([{ op: "replace", path: "", value: { fresh: true } }]);
    t.state.same = "a";
    ops(t);
    t.state.same = "a";
    expect(ops(t)).toEqual([]);
  });

  it("uses one whole-array replace when precise ops would be more than the array", () => {
    const t = fresh({ big: Array.from({ length: 100 }, (_, i) => i) });
    (t.state.big as Json[]).length = 2;
    expect(ops(t)).toEqual([{ op: "replace", path: "/big", value: [0, 1] }]);
    (t.state.big as Json[]).length = 1;
    expect(ops(t)).toEqual([{ op: "remove", path: "/big/1" }]);
  });

  it("escapes keys and keeps __proto__ a plain key", () => {
    const t = fresh();
    t.state["a/b~c"] = 1;
    // biome-ignore lint/complexity/useLiteralKeys: the test writes the key "__proto__" as data, which only the computed form does
    // biome-ignore lint/suspicious/noProto: as above, a pollution attempt on purpose
    t.state["__proto__"] = { polluted: true };
    expect(ops(t)).toEqual([
      { op: "add", path: "/a~1b~0c", value: 1 },
      { op: "add", path: "/__proto__", value: { polluted: true } },
    ]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.keys(t.raw)).toEqual(["a/b~c", "__proto__"]);
  });

  it("throws TypeError naming the path for non-JSON values", () => {
    const t = fresh({ list: [] });
    const state = t.state as Record<string, unknown>;
    expect(() => (state.f = () => 1)).toThrow(/invalid state value at \/f: functions/);
    expect(() => (state.u = undefined)).toThrow(/at \/u: undefined is not JSON/);
    expect(() => (state.n = Infinity)).toThrow(TypeError);
    expect(() => (state.d = new Date(0))).toThrow(/toISOString/);
    expect(() => (t.state.list as unknown[]).push({ ok: [1, new Map()] })).toThrow(/at \/list\/0\/ok\/1: Map\/Set/);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => (state.c = cyclic)).toThrow(/circular/);
    expect(() => Object.freeze(t.state)).toThrow(TypeError);
    expect(ops(t)).toEqual([]);
    expect(t.raw).toEqual({ list: [] });
  });

  it("behaves like plain JSON for readers", () => {
    const t = fresh({ a: { b: [1, { c: 2 }] } });
    const state = t.state;
    expect(state.a).toBe(state.a);
    expect(Array.isArray((state.a as JsonObject).b)).toBe(true);
    expect(JSON.stringify(state)).toBe('{"a":{"b":[1,{"c":2}]}}');
    expect({ ...state }).toEqual({ a: { b: [1, { c: 2 }] } });
    expect(((state.a as JsonObject).b as Json[]).map((x) => typeof x)).toEqual(["number", "object"]);
    expect(ops(t)).toEqual([]);
  });
});

describe("Python TrackedDict / TrackedList", () => {
  it("replays every single random mutation exactly (20 seeds x 200 steps)", () => {
    const python = runtimeCommands().python;
    const run = spawnSync(python, ["-I", "-S", fixture("py/tracked_steps.py"), "20", "200"], { cwd: REPO_ROOT, encoding: "utf8", maxBuffer: 512 * 1024 * 1024 });
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    const lines = run.stdout.trim().split("\n");
    expect(lines).toHaveLength(20 * 200);
    let mirror: Json = null;
    for (const line of lines) {
      const { seed, step, ops: stepOps, state } = JSON.parse(line) as { seed: number; step: number; ops: JsonPatchOp[]; state: Json };
      if (step === 0) mirror = { counter: 0, items: [] };
      mirror = applyPatch(mirror, stepOps);
      if (JSON.stringify(mirror) !== JSON.stringify(state)) {
        throw new Error(`seed ${seed} step ${step}: replay diverged\nreplayed ${JSON.stringify(mirror)}\nactual   ${JSON.stringify(state)}`);
      }
    }
  });
});
