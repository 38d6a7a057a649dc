/**
 * A circuit breaker that opens after N CONSECUTIVE failures, built on opossum.
 *
 * opossum trips on an error percentage over a rolling window, which is not "N in a row": with one
 * success among six calls it would never open at 100%, and at 50% it would open on 1 failure of 2.
 * So opossum's own percentage rule is switched off (errorThresholdPercentage 100: the rate has to
 * EXCEED it, which it never can) and a counter of consecutive failures, reset by every success,
 * opens the breaker explicitly. opossum keeps the rest: reject while open, half-open after
 * `cooldownMs` (one trial call; others are rejected until it settles), the first success closes,
 * a failure while half-open re-opens for another cooldown.
 *
 * Only errors `countsAsFailure` accepts are failures; others (a 4xx, the caller's abort) pass
 * through and count as a success for the streak (the upstream answered).
 */
import CircuitBreaker from "opossum";
import { PodiumConnectionError } from "./podium-connection-error.js";

export type BreakerState = "closed" | "open" | "half_open";

export interface ConsecutiveBreakerOptions {
  failureThreshold: number;
  cooldownMs: number;
  countsAsFailure: (error: unknown) => boolean;
  /** Used in the open-breaker error message. */
  name?: string;
}

type Action = () => Promise<unknown>;

export class ConsecutiveBreaker {
  private readonly breaker: CircuitBreaker<[Action], unknown>;
  private readonly options: ConsecutiveBreakerOptions;
  private consecutive = 0;

  constructor(options: ConsecutiveBreakerOptions) {
    this.options = options;
    this.breaker = new CircuitBreaker<[Action], unknown>((action: Action) => action(), {
      name: options.name ?? "podium",
      timeout: false,
      resetTimeout: options.cooldownMs,
      errorThresholdPercentage: 100,
      volumeThreshold: options.failureThreshold,
      allowWarmUp: false,
      errorFilter: (error: unknown) => !options.countsAsFailure(error),
    });
    this.breaker.on("failure", () => {
      this.consecutive += 1;
      if (this.consecutive >= options.failureThreshold) this.breaker.open();
    });
    this.breaker.on("success", () => {
      this.consecutive = 0;
    });
    this.breaker.on("close", () => {
      this.consecutive = 0;
    });
  }

  get state(): BreakerState {
    if (this.breaker.opened) return "open";
    if (this.breaker.halfOpen) return "half_open";
    return "closed";
  }

  /** Failures in a row so far (0 after any success). */
  get consecutiveFailures(): number {
    return this.consecutive;
  }

  /** Runs `action` through the breaker; while open, rejects at once with kind "circuit_open". */
  async fire<T>(action: () => Promise<T>): Promise<T> {
    try {
      return (await this.breaker.fire(action)) as T;
    } catch (error) {
      if (isOpenBreakerError(error)) {
        throw new PodiumConnectionError(`${this.options.name ?? "podium"} circuit breaker is open after ${this.options.failureThreshold} consecutive failures`, { kind: "circuit_open", cause: error });
      }
      throw error;
    }
  }

  /** Stops the cooldown timer and rejects further calls. */
  close(): void {
    this.breaker.shutdown();
  }
}

function isOpenBreakerError(error: unknown): boolean {
  return error instanceof Error && (error as Error & { code?: unknown }).code === "EOPENBREAKER";
}
