/** services/shared/json-patch.ts against RFC 6902 Appendix A and RFC 6901 escaping. */
import { describe, it, expect } from "@jest/globals";
import type { Json, JsonPatchOp } from "../../services/shared/json.js";
import { applyPatch, applyPatchToObject, formatPointer, jsonEqual, JsonPatchError, parsePointer } from "../../services/shared/json-patch.js";

const ops = (value: unknown): JsonPatchOp[] => value as JsonPatchOp[];
const patched = (doc: Json, patch: unknown): Json => applyPatch(JSON.parse(JSON.stringify(doc)) as Json, ops(patch));

describe("applyPatch: RFC 6902 Appendix A", () => {
  const valid: [string, Json, unknown, Json][] = [
    ["A.1 adding an object member", { foo: "bar" }, [{ op: "add", path: "/baz", value: "qux" }], { baz: "qux", foo: "bar" }],
    ["A.2 adding an array element", { foo: ["bar", "baz"] }, [{ op: "add", path: "/foo/1", value: "qux" }], { foo: ["bar", "qux", "baz"] }],
    ["A.3 removing an object member", { baz: "qux", foo: "bar" }, [{ op: "remove", path: "/baz" }], { foo: "bar" }],
    ["A.4 removing an array element", { foo: ["bar", "qux", "baz"] }, [{ op: "remove", path: "/foo/1" }], { foo: ["bar", "baz"] }],
    ["A.5 replacing a value", { baz: "qux", foo: "bar" }, [{ op: "replace", path: "/baz", value: "boo" }], { baz: "boo", foo: "bar" }],
    [
      "A.6 moving a value",
      { foo: { bar: "baz", waldo: "fred" }, qux: { corge: "grault" } },
      [{ op: "move", from: "/foo/waldo", path: "/qux/thud" }],
      { foo: { bar: "baz" }, qux: { corge: "grault", thud: "fred" } },
    ],
    ["A.7 moving an array element", { foo: ["all", "grass", "cows", "eat"] }, [{ op: "move", from: "/foo/1", path: "/foo/3" }], { foo: ["all", "cows", "eat", "grass"] }],
    [
      "A.8 testing a value: success",
      { baz: "qux", foo: ["a", 2, "c"] },
      [
        { op: "test", path: "/baz", value: "qux" },
        { op: "test", path: "/foo/1", value: 2 },
      ],
      { baz: "qux", foo: ["a", 2, "c"] },
    ],
    ["A.10 adding a nested member object", { foo: "bar" }, [{ op: "add", path: "/child", value: { grandchild: {} } }], { foo: "bar", child: { grandchild: {} } }],
    ["A.11 ignoring unrecognized elements", { foo: "bar" }, [{ op: "add", path: "/baz", value: "qux", xyz: 123 }], { foo: "bar", baz: "qux" }],
    ["A.14 ~ escape ordering", { "/": 9, "~1": 10 }, [{ op: "test", path: "/~01", value: 10 }], { "/": 9, "~1": 10 }],
    ["A.16 adding an array value", { foo: ["bar"] }, [{ op: "add", path: "/foo/-", value: ["abc", "def"] }], { foo: ["bar", ["abc", "def"]] }],
  ];
  it.each(valid)("%s", (_name, doc, patch, expected) => {
    expect(patched(doc, patch)).toEqual(expected);
  });

  const invalid: [string, Json, unknown][] = [
    ["A.9 testing a value: error", { baz: "qux" }, [{ op: "test", path: "/baz", value: "bar" }]],
    ["A.12 adding to a nonexistent target", { foo: "bar" }, [{ op: "add", path: "/baz/bat", value: "qux" }]],
    ["A.15 comparing strings and numbers", { "/": 9, "~1": 10 }, [{ op: "test", path: "/~01", value: "10" }]],
  ];
  it.each(invalid)("%s", (_name, doc, patch) => {
    expect(() => patched(doc, patch)).toThrow(JsonPatchError);
  });
});

describe("applyPatch: details", () => {
  it("decodes and encodes ~0 / ~1 (RFC 6901)", () => {
    expect(parsePointer("")).toEqual([]);
    expect(parsePointer("/")).toEqual([""]);
    expect(parsePointer("/a~1b/m~0n/~01/~10")).toEqual(["a/b", "m~n", "~1", "/0"]);
    expect(formatPointer(["a/b", "m~n", "~1", 3])).toBe("/a~1b/m~0n/~01/3");
    expect(() => parsePointer("a/b")).toThrow(JsonPatchError);
    const doc = { "a/b": { "m~n": 1 } };
    expect(patched(doc, [{ op: "replace", path: "/a~1b/m~0n", value: 2 }])).toEqual({ "a/b": { "m~n": 2 } });
    expect(patched({}, [{ op: "add", path: "/", value: "empty key" }])).toEqual({ "": "empty key" });
  });

  it("appends with '-' and inserts at the end index, but only for add", () => {
    expect(
      patched({ a: [1] }, [
        { op: "add", path: "/a/-", value: 2 },
        { op: "add", path: "/a/2", value: 3 },
      ]),
    ).toEqual({ a: [1, 2, 3] });
    expect(() => patched({ a: [1] }, [{ op: "replace", path: "/a/-", value: 2 }])).toThrow(JsonPatchError);
    expect(() => patched({ a: [1] }, [{ op: "remove", path: "/a/-" }])).toThrow(JsonPatchError);
    expect(() => patched({ a: [1] }, [{ op: "add", path: "/a/-/x", value: 2 }])).toThrow(JsonPatchError);
  });

  it("rejects bad array indexes and missing members", () => {
    const doc = { a: [1, 2], o: { k: 1 } };
    const bad: unknown[] = [
      { op: "add", path: "/a/3", value: 0 },
      { op: "add", path: "/a/01", value: 0 },
      { op: "add", path: "/a/-1", value: 0 },
      { op: "replace", path: "/a/2", value: 0 },
      { op: "remove", path: "/a/2" },
      { op: "remove", path: "/o/missing" },
      { op: "replace", path: "/o/missing", value: 0 },
      { op: "remove", path: "" },
      { op: "move", from: "/o/missing", path: "/x" },
      { op: "copy", from: "/a/5", path: "/x" },
      { op: "move", from: "/o", path: "/o/k/deeper" },
      { op: "test", path: "/nope", value: null },
      { op: "add", path: "/o/k/x", value: 0 },
      { op: "frobnicate", path: "/a" },
    ];
    for (const op of bad) expect(() => patched(doc, [op])).toThrow(JsonPatchError);
  });

  it("replaces the root, and applyPatchToObject insists on an object", () => {
    expect(patched({ a: 1 }, [{ op: "replace", path: "", value: [1] }])).toEqual([1]);
    expect(patched({ a: 1 }, [{ op: "add", path: "", value: { b: 2 } }])).toEqual({ b: 2 });
    expect(applyPatchToObject({ a: 1 }, ops([{ op: "replace", path: "/a", value: 2 }]))).toEqual({ a: 2 });
    expect(() => applyPatchToObject({ a: 1 }, ops([{ op: "replace", path: "", value: "s" }]))).toThrow(JsonPatchError);
  });

  it("copies deeply and moves within the document", () => {
    const doc = applyPatch({ src: { list: [1] } }, ops([{ op: "copy", from: "/src", path: "/dst" }])) as { src: { list: number[] }; dst: { list: number[] } };
    doc.dst.list.push(2);
    expect(doc.src.list).toEqual([1]);
    expect(patched({ a: 1 }, [{ op: "move", from: "/a", path: "/a" }])).toEqual({ a: 1 });
    expect(patched({ a: { b: 1 } }, [{ op: "move", from: "/a/b", path: "/b" }])).toEqual({ a: {}, b: 1 });
  });

  it("tests equality structurally, ignoring member order (RFC 6902 4.6)", () => {
    const doc = { o: { a: 1, b: [1, { c: null }] } };
    expect(() => patched(doc, [{ op: "test", path: "/o", value: { b: [1, { c: null }], a: 1 } }])).not.toThrow();
    expect(() => patched(doc, [{ op: "test", path: "/o/b", value: [{ c: null }, 1] }])).toThrow(JsonPatchError);
    expect(() => patched(doc, [{ op: "test", path: "/o", value: { a: 1 } }])).toThrow(JsonPatchError);
    expect(jsonEqual({ a: 1, b: 2 }, { b: 2, a: 1 })).toBe(true);
    expect(jsonEqual([], {})).toBe(false);
    expect(jsonEqual(null, {})).toBe(false);
    expect(jsonEqual(1, 1.0)).toBe(true);
  });

  it("keeps '__proto__' an ordinary member", () => {
    const doc = patched({}, [{ op: "add", path: "/__proto__", value: { polluted: true } }]) as Record<string, unknown>;
    expect(Object.getPrototypeOf(doc)).toBe(Object.prototype);
    expect(doc.polluted).toBeUndefined();
    expect(JSON.stringify(doc)).toBe('{"__proto__":{"polluted":true}}');
    expect(patched(doc as Json, [{ op: "replace", path: "/__proto__", value: 1 }])).toEqual(JSON.parse('{"__proto__":1}'));
  });

  it("leaves the document partly patched on failure (callers needing atomicity use applyAtomically)", () => {
    const doc = { a: 1 };
    expect(() =>
      applyPatch(
        doc,
        ops([
          { op: "replace", path: "/a", value: 2 },
          { op: "remove", path: "/zz" },
        ]),
      ),
    ).toThrow(JsonPatchError);
    expect(doc).toEqual({ a: 2 });
  });
});
