import { describe, it, expect } from "@jest/globals";
import type { Json, JsonObject, JsonPatchOp } from "../../services/shared/json.js";
import { isJsonObject } from "../../services/shared/json.js";
import { applyPatch, formatPointer, JsonPatchError } from "../../services/shared/json-patch.js";
import { applyAtomically } from "../../services/coordinator/store/apply-atomically.js";

/** Deterministic PRNG (mulberry32) so failures reproduce. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const clone = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

/** Every path in the document (containers and leaves), as token lists. */
function paths(doc: Json, prefix: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  out.push(prefix);
  if (Array.isArray(doc)) for (const [i, item] of doc.entries()) paths(item, [...prefix, i], out);
  else if (isJsonObject(doc)) for (const [key, value] of Object.entries(doc)) paths(value, [...prefix, key], out);
  return out;
}

function randomOp(doc: JsonObject, rnd: () => number): JsonPatchOp {
  const all = paths(doc);
  const pick = () => all[Math.floor(rnd() * all.length)] as (string | number)[];
  const containers = all.filter((p) => {
    let node: Json = doc;
    for (const t of p) node = (node as Record<string, Json>)[t] as Json;
    return typeof node === "object" && node !== null;
  });
  const container = containers[Math.floor(rnd() * containers.length)] as (string | number)[];
  const value: Json = rnd() < 0.3 ? { n: Math.floor(rnd() * 100), l: [1, "x"] } : rnd() < 0.5 ? [Math.floor(rnd() * 9)] : `v${Math.floor(rnd() * 1000)}`;
  const nonRoot = () => {
    const p = pick();
    return p.length === 0 ? undefined : formatPointer(p);
  };
  const r = rnd();
  let node: Json = doc;
  for (const t of container) node = (node as Record<string, Json>)[t] as Json;
  const childToken = Array.isArray(node) ? (rnd() < 0.5 ? "-" : String(Math.floor(rnd() * (node.length + 1)))) : `k${Math.floor(rnd() * 6)}~/`;
  const target = formatPointer(container) + "/" + (childToken === "-" ? "-" : childToken.replace(/~/g, "~0").replace(/\//g, "~1"));
  const existing = nonRoot();
  if (r < 0.35 || existing === undefined) return { op: "add", path: target, value };
  if (r < 0.55) return { op: "remove", path: existing };
  if (r < 0.75) return { op: "replace", path: existing, value };
  if (r < 0.85) return { op: "copy", from: existing, path: target };
  if (r < 0.95) return { op: "move", from: existing, path: target };
  return { op: "test", path: existing, value };
}

describe("applyAtomically", () => {
  it("matches applyPatch on success and restores the document on failure (randomized)", () => {
    const rnd = random(42);
    let successes = 0;
    let failures = 0;
    for (let round = 0; round < 1000; round++) {
      const doc: JsonObject = { a: [1, { b: "c" }, [2, 3]], o: { x: { y: null }, "s/l": true }, n: 5 };
      for (let warm = 0; warm < Math.floor(rnd() * 5); warm++) {
        try {
          applyAtomically(doc, [randomOp(doc, rnd)]);
        } catch {
          // a random op may not apply; the doc is unchanged then
        }
      }
      const ops = Array.from({ length: 1 + Math.floor(rnd() * 6) }, () => randomOp(doc, rnd));
      if (rnd() < 0.5) ops.push({ op: "remove", path: "/definitely/missing" });
      const before = clone(doc);
      const beforeText = JSON.stringify(doc);
      let expected: Json | undefined;
      try {
        expected = applyPatch(clone(doc), clone(ops));
      } catch (err) {
        expect(err).toBeInstanceOf(JsonPatchError);
      }
      let result: JsonObject | undefined;
      try {
        result = applyAtomically(doc, clone(ops)).state;
      } catch (err) {
        expect(err).toBeInstanceOf(JsonPatchError);
      }
      if (expected !== undefined && isJsonObject(expected)) {
        successes++;
        expect(JSON.stringify(result)).toBe(JSON.stringify(expected));
      } else {
        failures++;
        expect(result).toBeUndefined();
        expect(doc).toEqual(before);
        if (!ops.some((op) => op.op === "remove" || op.op === "move")) expect(JSON.stringify(doc)).toBe(beforeText);
      }
    }
    expect(successes).toBeGreaterThan(150);
    expect(failures).toBeGreaterThan(150);
  });

  it("rejects malformed operations without touching the document", () => {
    const doc: JsonObject = { a: 1 };
    const malformed: unknown[] = [
      null,
      { op: "add", path: "/b" },
      { op: "replace", path: "/a", value: undefined },
      { op: "add", path: 5, value: 1 },
      { op: "move", path: "/b" },
      { op: "copy", from: 1, path: "/b" },
    ];
    for (const op of malformed) {
      expect(() => applyAtomically(doc, [{ op: "add", path: "/first", value: 0 }, op as JsonPatchOp])).toThrow(JsonPatchError);
      expect(doc).toEqual({ a: 1 });
    }
  });

  it("rollback() undoes a patch that applied, restoring the same root object", () => {
    const doc: JsonObject = { list: [1, 2], obj: { k: "v" } };
    const applied = applyAtomically(doc, [
      { op: "add", path: "/list/0", value: 0 },
      { op: "remove", path: "/obj/k" },
      { op: "replace", path: "", value: { fresh: true } },
      { op: "add", path: "/more", value: 1 },
    ]);
    expect(applied.state).toEqual({ fresh: true, more: 1 });
    const restored = applied.rollback();
    expect(restored).toBe(doc);
    expect(doc).toEqual({ list: [1, 2], obj: { k: "v" } });
  });
});
