/**
 * ops/s of the TypeScript SDK's state tracking. Run under Bun (the runtime agents use):
 *   node_modules/.bin/bun test/sdk/bench/state-bench.ts
 * Prints one JSON line per workload; ops are flushed (serialized) every 1000 mutations, like turns.
 */
import { StateTracker } from "../../../sdk/typescript/src/tracked-state.js";
import type { Json, JsonObject } from "../../../sdk/typescript/src/json-value.js";

const N = Number(process.argv[2] ?? 300_000);
const FLUSH_EVERY = 1000;

function run(name: string, setup: () => JsonObject, body: (state: JsonObject, i: number) => void): void {
  const tracked = new StateTracker(setup());
  const plain = setup();
  const time = (state: JsonObject, flush: () => void): number => {
    const started = performance.now();
    for (let i = 0; i < N; i++) {
      body(state, i);
      if (i % FLUSH_EVERY === FLUSH_EVERY - 1) flush();
    }
    flush();
    return performance.now() - started;
  };
  time(tracked.state, () => tracked.takeOps()); // warm-up
  const tracker = new StateTracker(setup());
  const ms = time(tracker.state, () => tracker.takeOps());
  const plainMs = time(plain, () => undefined);
  console.log(JSON.stringify({ runtime: "typescript", workload: name, opsPerSec: Math.round(N / (ms / 1000)), plainOpsPerSec: Math.round(N / (plainMs / 1000)) }));
}

run(
  "counter += 1",
  () => ({ n: 0 }),
  (s) => {
    s.n = (s.n as number) + 1;
  },
);
run(
  "nested set a.b.c = i",
  () => ({ a: { b: { c: 0 } } }),
  (s, i) => {
    ((s.a as JsonObject).b as JsonObject).c = i;
  },
);
run(
  "array push",
  () => ({ list: [] }),
  (s, i) => {
    (s.list as Json[]).push(i);
  },
);
run(
  "new key with object value",
  () => ({ map: {} }),
  (s, i) => {
    (s.map as JsonObject)[`k${i}`] = { x: i, tags: ["a"] };
  },
);
run(
  "read nested (no mutation)",
  () => ({ a: { b: { c: 1 } } }),
  (s) => {
    if (((s.a as JsonObject).b as JsonObject).c !== 1) throw new Error("bad");
  },
);
