/**
 * A push-to-pull bridge: producers push values, one consumer iterates them. Ends on `end()`,
 * fails on `fail()`, and on `maxBuffered` overflow (a consumer that cannot keep up) fails with
 * RESOURCE_EXHAUSTED instead of growing without bound. Aborting `signal` ends the iteration.
 */
import { Code, ConnectError } from "@connectrpc/connect";

export class AsyncQueue<T> implements AsyncIterable<T> {
  private readonly buffer: T[] = [];
  private head = 0;
  private done = false;
  private error: unknown;
  private wake: (() => void) | undefined;

  constructor(
    private readonly maxBuffered = 100_000,
    signal?: AbortSignal,
  ) {
    signal?.addEventListener("abort", () => this.end(), { once: true });
  }

  push(value: T): void {
    if (this.done) return;
    if (this.buffer.length - this.head >= this.maxBuffered) {
      this.fail(new ConnectError(`consumer fell more than ${this.maxBuffered} updates behind`, Code.ResourceExhausted));
      return;
    }
    this.buffer.push(value);
    this.notify();
  }

  end(): void {
    this.done = true;
    this.notify();
  }

  fail(error: unknown): void {
    if (this.done) return;
    this.error = error;
    this.done = true;
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** Yields everything buffered at once (at most `maxBatch` per array), waiting when empty. */
  async *batches(maxBatch = 1000): AsyncGenerator<T[]> {
    for (;;) {
      if (this.head < this.buffer.length) {
        const end = Math.min(this.buffer.length, this.head + maxBatch);
        const batch = this.buffer.slice(this.head, end);
        this.head = end;
        if (this.head === this.buffer.length) {
          this.buffer.length = 0;
          this.head = 0;
        }
        yield batch;
        continue;
      }
      if (this.done) {
        if (this.error !== undefined) throw this.error;
        return;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      if (this.head < this.buffer.length) {
        const value = this.buffer[this.head] as T;
        this.head++;
        if (this.head > 1024 && this.head * 2 > this.buffer.length) {
          this.buffer.splice(0, this.head);
          this.head = 0;
        }
        yield value;
        continue;
      }
      if (this.done) {
        if (this.error !== undefined) throw this.error;
        return;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}
