/** Requests the agent sent with content.request_id, waiting for the host's `answer` {id, value}. */
import type { Json } from "./json-value.js";

interface Waiter {
  resolve(value: Json): void;
  reject(reason: unknown): void;
}

export class PendingRequests {
  private readonly waiting = new Map<string, Waiter>();

  get size(): number {
    return this.waiting.size;
  }

  /**
   * Registers `id`, then calls `send`. Settles with the answer, or rejects with the signal's reason
   * on abort, or with a TimeoutError after `timeoutMs`.
   */
  wait(id: string, signal: AbortSignal, timeoutMs: number | undefined, send: () => void): Promise<Json> {
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<Json>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const settle = (): void => {
        this.waiting.delete(id);
        signal.removeEventListener("abort", onAbort);
        if (timer) clearTimeout(timer);
      };
      const onAbort = (): void => {
        settle();
        reject(signal.reason);
      };
      this.waiting.set(id, {
        resolve: (value) => {
          settle();
          resolve(value);
        },
        reject: (reason) => {
          settle();
          reject(reason);
        },
      });
      signal.addEventListener("abort", onAbort, { once: true });
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          settle();
          reject(new DOMException(`no answer to request ${id} within ${timeoutMs} ms`, "TimeoutError"));
        }, timeoutMs);
      }
      try {
        send();
      } catch (error) {
        settle();
        reject(error);
      }
    });
  }

  /** Resolves the waiter for `id`; false when nothing waits for it. */
  answer(id: string, value: Json): boolean {
    const waiter = this.waiting.get(id);
    if (!waiter) return false;
    waiter.resolve(value);
    return true;
  }

  /** Rejects everything still waiting (used on stop). */
  rejectAll(reason: unknown): void {
    for (const waiter of [...this.waiting.values()]) waiter.reject(reason);
  }
}
