/**
 * Hands an agent's frames to the instance in order, a read's batch at a time, with one exception: a batch in
 * which events are followed by other frames is cut after those events, and the rest is handed over in
 * `setImmediate`. The SDKs write a turn's last events and its `turn_done` together, so they arrive in one read;
 * without the cut, the turn's end (its workspace capture barrier, its `turn.done`) would be worked on before
 * the event loop could carry the events just recorded to their clients (~0.15 ms on every round trip).
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
    const cut = batch[0]?.type === "event" ? batch.findIndex((frame) => frame.type !== "event") : -1;
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
