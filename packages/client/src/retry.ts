/**
 * Exponential backoff with jitter. Retry n (1-based) waits delaysMs[n-1] (the last entry repeats),
 * times a factor in [0.8, 1.2) when jitter is on. Only errors `isRetryable` accepts are retried; the
 * caller's abort stops the wait at once.
 */
import type { CompiledClientOptions } from "./client-options.js";
import { abortedError } from "./podium-connection-error.js";

export const JITTER_MIN = 0.8;
export const JITTER_MAX = 1.2;

/** The wait before retry `retry` (1-based). */
export function retryDelayMs(retry: number, options: Pick<CompiledClientOptions, "retry" | "random">): number {
  const { delaysMs, jitter } = options.retry;
  const base = delaysMs[Math.min(retry, delaysMs.length) - 1] ?? 0;
  if (!jitter) return base;
  return Math.round(base * (JITTER_MIN + (JITTER_MAX - JITTER_MIN) * options.random()));
}

export interface RetryRun {
  /** What is being done, for error messages ("createInstance"). */
  what: string;
  isRetryable: (error: unknown) => boolean;
  signal?: AbortSignal | undefined;
}

/** Runs `attempt` (0-based attempt number) until it succeeds, fails for good, or retries run out. */
export async function withRetry<T>(attempt: (n: number) => Promise<T>, run: RetryRun, options: Pick<CompiledClientOptions, "retry" | "random" | "sleep">): Promise<T> {
  for (let n = 0; ; n++) {
    if (run.signal?.aborted) throw abortedError(run.signal, run.what);
    try {
      return await attempt(n);
    } catch (error) {
      if (n >= options.retry.maxRetries || !run.isRetryable(error)) throw error;
    }
    try {
      await options.sleep(retryDelayMs(n + 1, options), run.signal);
    } catch (error) {
      if (run.signal?.aborted) throw abortedError(run.signal, run.what);
      throw error;
    }
  }
}
