/**
 * Admission for instance starts: at most `concurrency` starts run at once (spawning, sandbox set-up,
 * opening databases, waiting for `ready`), at most `maxWaiting` more wait for a slot, in arrival order, for
 * at most `maxWaitMs`. Everything beyond is refused at once with RESOURCE_EXHAUSTED and a `retry-after`
 * (seconds) in the error's metadata, which the gateway answers as 429 + Retry-After. A burst therefore
 * costs the event loop a bounded amount of start-up work at a time, and heartbeats, probes and running
 * agents keep being served while it drains.
 */
import { Code, ConnectError } from "@connectrpc/connect";

export interface StartAdmissionOptions {
  /** Starts running at once. */
  concurrency: number;
  /** Starts waiting for a slot; more are refused. */
  maxWaiting: number;
  /** How long a start may wait for a slot before it is refused. */
  maxWaitMs: number;
  /** Seconds a refused caller should wait before trying again (the `retry-after` metadata). */
  retryAfterSeconds?: number;
  /** Names the coordinator in refusals. */
  name: string;
}

interface Waiter {
  grant(): void;
  fail(error: ConnectError): void;
}

/** Releases a slot; calling it again does nothing. */
export type AdmissionRelease = () => void;

export class StartAdmission {
  private running = 0;
  private readonly waiting: Waiter[] = [];
  /** Monotonic counts (metrics, benches): admitted at once or after waiting, refused (queue full or waited too long). */
  readonly counts = { admitted: 0, queued: 0, refused: 0 };

  constructor(private readonly options: StartAdmissionOptions) {
    if (!Number.isSafeInteger(options.concurrency) || options.concurrency < 1) throw new RangeError(`concurrency must be a positive integer, got ${options.concurrency}`);
    if (!Number.isSafeInteger(options.maxWaiting) || options.maxWaiting < 0) throw new RangeError(`maxWaiting must be a non-negative integer, got ${options.maxWaiting}`);
  }

  /** Starts running now. */
  get active(): number {
    return this.running;
  }

  /** Starts waiting for a slot now. */
  get queued(): number {
    return this.waiting.length;
  }

  /**
   * Resolves with a release once the caller may start. Refuses with RESOURCE_EXHAUSTED + retry-after when
   * the queue is full or the wait exceeded `maxWaitMs`, with CANCELED when `signal` aborts while waiting.
   */
  acquire(signal?: AbortSignal): Promise<AdmissionRelease> {
    if (signal?.aborted) return Promise.reject(new ConnectError("instance creation was cancelled", Code.Canceled));
    if (this.running < this.options.concurrency && this.waiting.length === 0) {
      this.counts.admitted++;
      return Promise.resolve(this.grant());
    }
    if (this.waiting.length >= this.options.maxWaiting) {
      this.counts.refused++;
      return Promise.reject(this.busy(`${this.running} instances are starting and ${this.waiting.length} are waiting to`));
    }
    this.counts.queued++;
    return new Promise<AdmissionRelease>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        const index = this.waiting.indexOf(waiter);
        if (index >= 0) this.waiting.splice(index, 1);
      };
      const waiter: Waiter = {
        grant: () => {
          done();
          resolve(this.grant());
        },
        fail: (error) => {
          done();
          reject(error);
        },
      };
      const onAbort = () => waiter.fail(new ConnectError("instance creation was cancelled", Code.Canceled));
      const timer = setTimeout(() => {
        this.counts.refused++;
        waiter.fail(this.busy(`this create waited ${this.options.maxWaitMs} ms for one of ${this.options.concurrency} start slots`));
      }, this.options.maxWaitMs);
      timer.unref(); // a waiting create alone does not keep the process alive
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiting.push(waiter);
    });
  }

  private grant(): AdmissionRelease {
    this.running++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.running--;
      // FIFO: the oldest waiter takes the slot (it removes itself from the queue).
      this.waiting[0]?.grant();
    };
  }

  private busy(why: string): ConnectError {
    const seconds = this.options.retryAfterSeconds ?? 1;
    return new ConnectError(`coordinator ${this.options.name} is busy starting instances (${why}); retry in ${seconds} s`, Code.ResourceExhausted, { "retry-after": String(seconds) });
  }
}

/** How many instance starts run at once, and how many may wait (how long) before creates are refused with 429. */
export interface StartLimits {
  concurrency: number;
  maxWaiting: number;
  maxWaitMs: number;
}

/** 2 starts per core, 16 waiting per core (at least 16), 10 s of waiting at most. */
export function startLimitsFor(cores: number, overrides: Partial<StartLimits> = {}): StartLimits {
  const n = Math.max(1, cores);
  return { concurrency: 2 * n, maxWaiting: Math.max(16, 16 * n), maxWaitMs: 10_000, ...overrides };
}
