/**
 * The frames one WebSocket client sends are handled one after the other, in the order they arrived:
 * a `process_message` is forwarded (and acknowledged by the coordinator, which gives it its seq) before
 * the next frame of the same socket is, so messages reach the agent in the order sent. Each socket
 * has its own chain, so a slow frame never holds up another socket. When `maxQueued` frames are
 * waiting, the socket is paused (TCP pushes back on the client) until half of them are done.
 */
export interface PausableSocket {
  pause(): void;
  resume(): void;
}

export class OrderedFrames {
  private tail: Promise<void> = Promise.resolve();
  private queued = 0;
  private paused = false;

  constructor(
    private readonly socket: PausableSocket,
    private readonly maxQueued = 64,
  ) {}

  /** Frames accepted and not yet handled (the running one included). */
  get pending(): number {
    return this.queued;
  }

  /** Runs `task` after every task pushed before it has settled; `task` handles its own errors. */
  push(task: () => Promise<void>): void {
    this.queued++;
    if (!this.paused && this.queued >= this.maxQueued) {
      this.paused = true;
      this.socket.pause();
    }
    this.tail = this.tail
      .then(task)
      .catch(() => undefined)
      .finally(() => {
        this.queued--;
        if (this.paused && this.queued <= this.maxQueued / 2) {
          this.paused = false;
          this.socket.resume();
        }
      });
  }

  /** Resolves once every frame pushed so far has been handled. */
  idle(): Promise<void> {
    return this.tail;
  }
}
