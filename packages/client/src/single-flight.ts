/**
 * Connection deduplication: concurrent calls with the same key share one in-flight operation and
 * all get its result. Each caller may abort its own wait; the shared operation is aborted only when
 * every caller waiting on it has aborted. Once it settles, the next call with the key starts anew.
 */
import { abortedError } from "./podium-connection-error.js";

interface Flight<T> {
  promise: Promise<T>;
  controller: AbortController;
  waiters: number;
}

export class SingleFlight<T> {
  private readonly flights = new Map<string, Flight<T>>();

  /** Keys with an operation in flight. */
  get inFlight(): number {
    return this.flights.size;
  }

  run(key: string, start: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal, what = "operation"): Promise<T> {
    if (signal?.aborted) return Promise.reject(abortedError(signal, what));
    let flight = this.flights.get(key);
    if (!flight) {
      const controller = new AbortController();
      const created: Flight<T> = { promise: Promise.resolve() as Promise<never>, controller, waiters: 0 };
      created.promise = start(controller.signal).finally(() => {
        if (this.flights.get(key) === created) this.flights.delete(key);
      });
      created.promise.catch(() => undefined); // observed by the waiters; never unhandled
      this.flights.set(key, created);
      flight = created;
    }
    return this.wait(flight, signal, what);
  }

  private wait(flight: Flight<T>, signal: AbortSignal | undefined, what: string): Promise<T> {
    flight.waiters += 1;
    if (!signal) return flight.promise;
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        flight.waiters -= 1;
        if (flight.waiters === 0) flight.controller.abort(signal.reason);
        reject(abortedError(signal, what));
      };
      signal.addEventListener("abort", onAbort, { once: true });
      flight.promise.then(
        (value) => {
          signal.removeEventListener("abort", onAbort);
          resolve(value);
        },
        (error: unknown) => {
          signal.removeEventListener("abort", onAbort);
          reject(error);
        },
      );
    });
  }
}
