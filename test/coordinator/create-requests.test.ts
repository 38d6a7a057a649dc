/** Idempotent creates on the coordinator: one create per request id, undone when every caller left. */
import { describe, it, expect } from "@jest/globals";
import { Code, ConnectError } from "@connectrpc/connect";
import { CreateRequests } from "../../services/coordinator/create-requests.js";

interface Started {
  id: number;
  signal: AbortSignal;
  finish(): void;
  fail(error: unknown): void;
}

/** A create that finishes when the test says so, counting how many were started and discarded. */
function harness(now?: () => number) {
  const started: Started[] = [];
  const discarded: number[] = [];
  const requests = new CreateRequests<number>({ discard: (id) => void discarded.push(id), retentionMs: 1000, ...(now ? { now } : {}) });
  const create = (signal: AbortSignal): Promise<number> =>
    new Promise<number>((resolve, reject) => {
      const id = started.length + 1;
      started.push({ id, signal, finish: () => resolve(id), fail: reject });
    });
  return { requests, started, discarded, create };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("CreateRequests", () => {
  it("a retry with the same request id joins the create in flight, and gets the same result once it is done", async () => {
    const { requests, started, create } = harness();
    const first = requests.run("req-1", new AbortController().signal, create);
    const retry = requests.run("req-1", new AbortController().signal, create);
    await tick();
    expect(started).toHaveLength(1);
    started[0]?.finish();
    expect(await first).toBe(1);
    expect(await retry).toBe(1);
    expect(await requests.run("req-1", new AbortController().signal, create)).toBe(1);
    expect(started).toHaveLength(1);
    // Another id, or none, is another create.
    const other = requests.run("req-2", new AbortController().signal, create);
    const anonymous = requests.run("", new AbortController().signal, create);
    await tick();
    expect(started).toHaveLength(3);
    started[1]?.finish();
    started[2]?.finish();
    expect([await other, await anonymous]).toEqual([2, 3]);
  });

  it("the first caller leaving does not cancel a create a retry has joined", async () => {
    const { requests, started, discarded, create } = harness();
    const gone = new AbortController();
    const first = requests.run("req-1", gone.signal, create);
    const retry = requests.run("req-1", new AbortController().signal, create);
    gone.abort();
    await expect(first).rejects.toMatchObject({ code: Code.Canceled });
    await tick();
    expect(started[0]?.signal.aborted).toBe(false);
    started[0]?.finish();
    expect(await retry).toBe(1);
    expect(discarded).toEqual([]);
  });

  it("when every caller left, the create is cancelled, and one that finishes anyway is discarded; a later retry starts afresh", async () => {
    const { requests, started, discarded, create } = harness();
    const gone = new AbortController();
    const first = requests.run("req-1", gone.signal, create);
    await tick();
    gone.abort();
    await expect(first).rejects.toMatchObject({ code: Code.Canceled });
    expect(started[0]?.signal.aborted).toBe(true);
    started[0]?.finish(); // too late to stop: nobody will learn about it
    await tick();
    expect(discarded).toEqual([1]);
    const again = requests.run("req-1", new AbortController().signal, create);
    await tick();
    expect(started).toHaveLength(2);
    started[1]?.finish();
    expect(await again).toBe(2);
    expect(discarded).toEqual([1]);
  });

  it("a failed create is forgotten at once (a retry starts afresh); a finished one after its retention", async () => {
    let now = 0;
    const { requests, started, create } = harness(() => now);
    const failing = requests.run("req-1", new AbortController().signal, create);
    await tick();
    started[0]?.fail(new ConnectError("spawn failed", Code.Internal));
    await expect(failing).rejects.toMatchObject({ code: Code.Internal });
    const retried = requests.run("req-1", new AbortController().signal, create);
    await tick();
    started[1]?.finish();
    expect(await retried).toBe(2);
    expect(requests.size).toBe(1);
    now += 1001;
    const later = requests.run("req-1", new AbortController().signal, create);
    await tick();
    expect(started).toHaveLength(3);
    started[2]?.finish();
    expect(await later).toBe(3);
  });
});
