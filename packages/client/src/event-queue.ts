/**
 * A single-consumer async queue for WebSocket events, with backpressure: past `highWaterMark`
 * buffered events it calls `pause()`, and `resume()` once the consumer has drained to half of it.
 * Iterable once; a consumer that stops early (break / return()) makes further pushes no-ops.
 */
export interface EventQueueHooks {
  pause(): void;
  resume(): void;
}

export class EventQueue<T> implements AsyncIterable<T> {
  private readonly buffer: T[] = [];
  private done = false;
  private error: unknown;
  private paused = false;
  private consumed = false;
  private waiter: { resolve: (result: IteratorResult<T>) => void; reject: (error: unknown) => void } | undefined;

  constructor(
    private readonly hooks: EventQueueHooks,
    private readonly highWaterMark = 1024,
  ) {}

  push(value: T): void {
    if (this.done) return;
    const waiter = this.waiter;
    if (waiter) {
      this.waiter = undefined;
      waiter.resolve({ value, done: false });
      return;
    }
    this.buffer.push(value);
    if (!this.paused && this.buffer.length >= this.highWaterMark) {
      this.paused = true;
      this.hooks.pause();
    }
  }

  /** Ends the stream after the buffered events; with `error`, the consumer gets it after them. */
  end(error?: unknown): void {
    if (this.done) return;
    this.done = true;
    this.error = error;
    const waiter = this.waiter;
    this.waiter = undefined;
    if (waiter) {
      if (error !== undefined) waiter.reject(error);
      else waiter.resolve({ value: undefined, done: true });
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    if (this.consumed) throw new TypeError("connection events can be iterated only once");
    this.consumed = true;
    return {
      next: () => this.next(),
      return: async () => {
        this.stop();
        return { value: undefined, done: true };
      },
    };
  }

  private next(): Promise<IteratorResult<T>> {
    if (this.buffer.length > 0) {
      const value = this.buffer.shift() as T;
      if (this.paused && this.buffer.length <= this.highWaterMark / 2) {
        this.paused = false;
        this.hooks.resume();
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.done) {
      const error = this.error;
      this.error = undefined;
      return error !== undefined ? Promise.reject(error) : Promise.resolve({ value: undefined, done: true });
    }
    if (this.waiter) return Promise.reject(new TypeError("next() called while a previous next() is pending"));
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  private stop(): void {
    this.buffer.length = 0;
    this.done = true;
    this.error = undefined;
    if (this.paused) {
      this.paused = false;
      this.hooks.resume();
    }
  }
}
