import { describe, it, expect } from "@jest/globals";
import type { Json, JsonObject } from "../../services/shared/json.js";
import { assembleStatePieces, planStatePieces } from "../../services/coordinator/store/state-pieces.js";

/** JSON text equality is the contract: same values, same key order, same array order. */
async function roundTrip(state: JsonObject, maxChars?: number): Promise<JsonObject> {
  const plan = planStatePieces(state, maxChars);
  const assembled = await assembleStatePieces(plan, { sliceMs: 0 });
  expect(JSON.stringify(assembled)).toBe(JSON.stringify(state));
  return assembled;
}

function randomValue(random: () => number, depth: number): Json {
  const pick = random();
  if (depth <= 0 || pick < 0.4) {
    const leaves: Json[] = [null, true, false, Math.floor(random() * 1e6), random() * 10, "", `s${Math.floor(random() * 1e4)}`, 'é漢字🎉\n"\\', "x".repeat(Math.floor(random() * 300))];
    return leaves[Math.floor(random() * leaves.length)] as Json;
  }
  const size = Math.floor(random() * 12);
  if (pick < 0.7) return Array.from({ length: size }, () => randomValue(random, depth - 1));
  const object: JsonObject = {};
  for (let i = 0; i < size; i++) object[random() < 0.2 ? String(Math.floor(random() * 50)) : `k${Math.floor(random() * 1e5)}`] = randomValue(random, depth - 1);
  return object;
}

describe("state pieces", () => {
  it("assembles what it planned: nested large arrays and objects, multi-byte text, empty containers", async () => {
    const conversation = Array.from({ length: 3000 }, (_, i) => ({ id: i, role: i % 2 ? "user" : "assistant", text: `message ${i} — ünïcødé 漢字 🎉`, tools: [] as Json[], meta: {} }));
    const state: JsonObject = {
      conversation,
      index: Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`key-${i}`, { n: i, tags: ["a", "b"] }])),
      "10": "integer-like keys come first, in both",
      nested: { deeper: { list: Array.from({ length: 5000 }, (_, i) => [i, `v${i}`]) } },
      empty: { a: [], b: {} },
    };
    const plan = planStatePieces(state);
    expect(plan.pieces.filter((p) => p.op === "members").length).toBeGreaterThan(5);
    await roundTrip(state);
  });

  it("holds for random states cut into tiny pieces", async () => {
    let seed = 42;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let i = 0; i < 200; i++) {
      const value = randomValue(random, 5);
      const state: JsonObject = { value, more: randomValue(random, 4) };
      await roundTrip(state, 1 + Math.floor(random() * 200));
    }
  });

  it("keeps a key named __proto__ as data and never touches the prototype", async () => {
    const state = JSON.parse(`{"__proto__":{"polluted":true},"list":[${Array.from({ length: 100 }, (_, i) => `{"__proto__":{"x":${i}}}`).join(",")}]}`) as JsonObject;
    const assembled = await roundTrip(state, 50);
    expect(Object.getPrototypeOf(assembled)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.keys(assembled)).toEqual(["__proto__", "list"]);
  });

  it("yields to the event loop between slices and stops when aborted", async () => {
    const state: JsonObject = { list: Array.from({ length: 20_000 }, (_, i) => ({ i, text: "y".repeat(200) })) };
    const plan = planStatePieces(state, 1024);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    try {
      await assembleStatePieces(plan, { sliceMs: 0 });
    } finally {
      clearInterval(timer);
    }
    expect(ticks).toBeGreaterThan(0);
    const controller = new AbortController();
    const assembling = assembleStatePieces(plan, { sliceMs: 0, signal: controller.signal });
    controller.abort();
    await expect(assembling).rejects.toThrow();
  });
});
