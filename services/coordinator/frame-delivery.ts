/**
 * Hands an agent's frames to the instance in order, a read's batch at a time, with one exception: a batch in
 * which events (and a `turn_done` right after them) are followed by other frames is cut before those frames,
 * and the rest is handed over in `setImmediate`, so that what they trigger (a state patch's commit, ...) is
 * worked on after the event loop carried the events just recorded to their clients. A turn's `turn_done` is not
 * cut off its last events: the SDKs write them together, and the instance records the turn's end with them (one
 * commit, one batch for each client) when the end needs no wait (agent-instance.ts, finishTurn).
 * Batches that arrive meanwhile wait behind the rest, so the order never changes; `flush()` hands over
 * everything at once (the process exited: its frames come before its exit).
 */
import type { AgentToHost } from "./agent-protocol.js";

export class FrameDelivery {
  private readonly waiting: AgentToHost[][] = [];
  private scheduled: NodeJS.Immediate | undefined;

  constructor(private readonly onFrames: (frames: AgentToHost[]) => void) {}

  push(batch: AgentToHost[]): void {
    if (this.scheduled) this.waiting.push(batch);
    else this.deliver(batch);
  }

  /** Hands over whatever waits, now. */
  flush(): void {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    for (let batch = this.waiting.shift(); batch; batch = this.waiting.shift()) this.onFrames(batch);
  }

  private deliver(batch: AgentToHost[]): void {
    const cut = batch[0]?.type === "event" ? batch.findIndex((frame) => frame.type !== "event" && frame.type !== "turn_done") : -1;
    if (cut === -1) {
      this.onFrames(batch);
      return;
    }
    this.waiting.unshift(batch.slice(cut));
    this.scheduled = setImmediate(() => this.drain());
    this.onFrames(batch.slice(0, cut));
  }

  private drain(): void {
    this.scheduled = undefined;
    while (!this.scheduled) {
      const batch = this.waiting.shift();
      if (!batch) return;
      this.deliver(batch);
    }
  }
}
