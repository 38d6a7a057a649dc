/**
 * A turn's end through the coordinator core (core-harness.ts, fake agent process): when its workspace capture
 * needs no wait, the turn's last events and its end are recorded together and reach a live stream as one batch;
 * when the capture waits for its barrier, the events go first and the end follows. A state patch's `state.delta`
 * is recorded in the same transaction as the frames around it. Seqs stay gap-free.
 */
import { describe, expect, it } from "@jest/globals";
import type { CaptureOutcome } from "../../services/coordinator/agent-instance-options.js";
import type { StreamUpdate } from "../../gen/podium/v1/stream_update_pb.js";
import type { JsonObject } from "../../services/shared/json.js";
import { type CoreHarness, harnessesPerTest } from "./core-harness.js";

const harness = harnessesPerTest();

/** What the fake capture answers, one per turn's end (undefined: nothing changed, at once). */
type Answer = CaptureOutcome | Promise<CaptureOutcome>;

function harnessWithCapture(answers: Answer[]): CoreHarness {
  return harness({ workspaceCapture: { capture: () => undefined, captureSoon: () => answers.shift() } });
}

/** Sends an echo turn (so that the stream is live), then `count` events in one turn; the batches of that turn, up to its turn.done. */
function floodBatches(h: CoreHarness, instanceId: string, count: number, onFirst?: () => void): Promise<StreamUpdate[][]> {
  return turnBatches(h, instanceId, { fake: "flood", count }, onFirst);
}

/** Sends an echo turn (so that the stream is live), then a turn of `content`; the batches of that turn, up to its turn.done. */
async function turnBatches(h: CoreHarness, instanceId: string, content: JsonObject, onFirst?: () => void): Promise<StreamUpdate[][]> {
  const abort = new AbortController();
  const batches: StreamUpdate[][] = [];
  const warm = await h.instances.sendMessage({ instanceId, content: { text: "warm" } });
  let flood: bigint | undefined;
  try {
    for await (const { updates } of h.instances.streamUpdates({ instanceId, replayAll: true }, { signal: abort.signal })) {
      if (flood === undefined) {
        if (updates.some((u) => u.messageType === "turn.done" && u.turn === warm.turn)) flood = (await h.instances.sendMessage({ instanceId, content })).turn;
        continue;
      }
      batches.push(updates.filter((u) => u.turn === flood));
      if (batches.length === 1) onFirst?.();
      if (updates.some((u) => u.messageType === "turn.done" && u.turn === flood)) return batches;
    }
  } finally {
    abort.abort();
  }
  return batches;
}

const types = (batches: StreamUpdate[][]) => batches.map((batch) => batch.map((u) => u.messageType));
const gapFree = (updates: StreamUpdate[]) => updates.every((u, i) => i === 0 || u.seq === (updates[i - 1]?.seq ?? 0n) + 1n);

describe("a turn's end", () => {
  const chunks = Array.from({ length: 5 }, () => "chunk");

  it("is recorded with the turn's last events, one batch, when the capture found nothing at once", async () => {
    const h = harnessWithCapture([undefined, undefined]);
    const instanceId = await h.create();
    const batches = await floodBatches(h, instanceId, 5);
    expect(types(batches)).toEqual([[...chunks, "complete", "turn.done"]]);
    expect(gapFree(batches.flat())).toBe(true);
  });

  it("records what a capture found at once between the turn's last events and its end, in the same batch", async () => {
    const h = harnessWithCapture([undefined, { iteration: 1, files: [{ path: "a.txt", change: "added" }] }]);
    const instanceId = await h.create();
    const batches = await floodBatches(h, instanceId, 5);
    expect(types(batches)).toEqual([[...chunks, "workspace.changed", "complete", "turn.done"]]);
    expect(batches[0]?.[5]?.content).toEqual({ iteration: 1, files: [{ path: "a.txt", change: "added" }] });
    expect(gapFree(batches.flat())).toBe(true);
  });

  it("sends the events first when the capture waits for its barrier, then what it found and the turn's end", async () => {
    let found: (outcome: CaptureOutcome) => void = () => undefined;
    const h = harnessWithCapture([undefined, new Promise<CaptureOutcome>((resolve) => (found = resolve))]);
    const instanceId = await h.create();
    const batches = await floodBatches(h, instanceId, 5, () => found({ iteration: 1, files: [{ path: "b.txt", change: "modified" }] }));
    expect(types(batches)).toEqual([chunks, ["workspace.changed", "complete", "turn.done"]]);
    expect(gapFree(batches.flat())).toBe(true);
  });

  it("records a state patch's state.delta in one transaction with the events around it and the turn's end", async () => {
    const h = harness();
    const instanceId = await h.create();
    // Each appendMany is one messages.db transaction: which rows each one recorded.
    const messages = h.manager.require(instanceId).store.messages;
    const appendMany = messages.appendMany.bind(messages);
    const transactions: string[][] = [];
    messages.appendMany = (rows) => {
      transactions.push(rows.map((row) => row.messageType));
      return appendMany(rows);
    };
    // The fake agent hands its echo event, a state patch and turn_done over in one batch (a real process's
    // frame-delivery.ts would hand the patch and what follows it over after the event went out).
    const updates = (await turnBatches(h, instanceId, { text: "hi" })).flat();
    expect(updates.map((u) => u.messageType)).toEqual(["echo", "state.delta", "complete", "turn.done"]);
    expect(updates[1]?.content).toEqual({ version: 3, patch: [{ op: "replace", path: "/count", value: 2 }] });
    expect(gapFree(updates)).toBe(true);
    expect(transactions.at(-1)).toEqual(["echo", "state.delta", "complete", "turn.done"]);
  });

  it("without a capture, still ends the turn with its last events", async () => {
    const h = harness();
    const instanceId = await h.create();
    const batches = await floodBatches(h, instanceId, 3);
    expect(types(batches)).toEqual([["chunk", "chunk", "chunk", "complete", "turn.done"]]);
  });
});

describe("what the process's last writes changed", () => {
  const changed = (path: string): CaptureOutcome => ({ iteration: 1, files: [{ path, change: "added" }] });

  it("is recorded before `hibernated` (what onHibernate wrote)", async () => {
    const finals: CaptureOutcome[] = [changed("bye.txt")];
    const h = harness({ manifest: { limits: { hibernate_after_ms: 30 } }, workspaceCapture: { capture: () => finals.shift(), captureSoon: () => undefined } });
    const instanceId = await h.create();
    const updates = await h.updatesUntil(instanceId, (u) => u.messageType === "hibernated");
    const last = updates.slice(-2);
    expect(last.map((u) => u.messageType)).toEqual(["workspace.changed", "hibernated"]);
    expect(last[0]?.content).toEqual({ iteration: 1, files: [{ path: "bye.txt", change: "added" }] });
    expect(gapFree(updates)).toBe(true);
  });

  it("is recorded in a crashed turn before its error and turn.done, and before `terminated`", async () => {
    const finals: CaptureOutcome[] = [changed("partial.txt")];
    const h = harness({ workspaceCapture: { capture: () => finals.shift(), captureSoon: () => undefined } });
    const instanceId = await h.create();
    const crashing = await h.instances.sendMessage({ instanceId, content: { fake: "crash" } });
    const updates = await h.updatesUntil(instanceId, (u) => u.messageType === "terminated");
    expect(updates.filter((u) => u.turn === crashing.turn || u.messageType === "terminated").map((u) => u.messageType)).toEqual(["started", "workspace.changed", "error", "turn.done", "terminated"]);
    expect(gapFree(updates.filter((u) => u.turn === crashing.turn || u.messageType === "terminated"))).toBe(true); // the message itself is inbound, not streamed
  });
});
