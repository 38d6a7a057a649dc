/** StartAdmission: bounded concurrent starts, a bounded FIFO wait, clean refusals with retry-after. */
import { describe, it, expect } from "@jest/globals";
import { Code } from "@connectrpc/connect";
import { StartAdmission, type AdmissionRelease } from "../../services/coordinator/start-admission.js";
import { connectErrorOf as refusal } from "../helpers/connect-error-of.js";

const admission = (concurrency: number, maxWaiting: number, maxWaitMs = 10_000) => new StartAdmission({ concurrency, maxWaiting, maxWaitMs, name: "coord-test" });
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("StartAdmission", () => {
  it("runs at most `concurrency` at once and admits waiters in arrival order as slots free", async () => {
    const gate = admission(2, 10);
    const order: number[] = [];
    const releases: AdmissionRelease[] = [];
    const all = [1, 2, 3, 4, 5].map((n) =>
      gate.acquire().then((release) => {
        order.push(n);
        releases.push(release);
      }),
    );
    await tick();
    expect(order).toEqual([1, 2]);
    expect([gate.active, gate.queued]).toEqual([2, 3]);
    releases[0]?.();
    releases[0]?.(); // a second release of the same slot does nothing
    await tick();
    expect(order).toEqual([1, 2, 3]);
    expect(gate.active).toBe(2);
    for (let i = 1; i < 5; i++) {
      releases[i]?.();
      await tick();
    }
    await Promise.all(all);
    expect(order).toEqual([1, 2, 3, 4, 5]);
    expect(gate.counts).toEqual({ admitted: 2, queued: 3, refused: 0 });
  });

  it("refuses beyond the wait queue at once: RESOURCE_EXHAUSTED with retry-after", async () => {
    const gate = admission(1, 1);
    await gate.acquire();
    const waiting = gate.acquire();
    const error = await refusal(gate.acquire());
    expect(error.code).toBe(Code.ResourceExhausted);
    expect(error.metadata.get("retry-after")).toBe("1");
    expect(error.rawMessage).toMatch(/coord-test is busy starting instances/);
    expect(gate.queued).toBe(1);
    void waiting.catch(() => undefined);
  });

  it("refuses a start that waited longer than maxWaitMs, and frees its place", async () => {
    const gate = admission(1, 5, 50);
    const first = await gate.acquire();
    const error = await refusal(gate.acquire());
    expect(error.code).toBe(Code.ResourceExhausted);
    expect(error.metadata.get("retry-after")).toBe("1");
    expect(gate.queued).toBe(0);
    first();
    const next = await gate.acquire();
    expect(gate.active).toBe(1);
    next();
  });

  it("a waiter whose caller gave up leaves the queue with CANCELED and never runs", async () => {
    const gate = admission(1, 5);
    const first = await gate.acquire();
    const abort = new AbortController();
    const cancelled = gate.acquire(abort.signal);
    const after = gate.acquire();
    abort.abort();
    expect((await refusal(cancelled)).code).toBe(Code.Canceled);
    expect(gate.queued).toBe(1);
    first();
    const release = await after;
    expect(gate.active).toBe(1);
    release();
    expect((await refusal(gate.acquire(AbortSignal.abort()))).code).toBe(Code.Canceled);
  });
});
