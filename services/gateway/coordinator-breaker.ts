/**
 * Circuit breaking toward one coordinator, on opossum. A coordinator that keeps failing (connections
 * refused or reset, calls cut before an answer) or stops answering is taken out of placement and
 * routing long before its heartbeat key expires, and is probed to come back:
 *
 * - closed: calls pass (through `interceptor`). `failureThreshold` failures in a row open the breaker.
 *   When a call has waited `slowCallMs` with no answer from the coordinator meanwhile, the breaker
 *   sends a probe (CoordinatorService.GetCoordinatorInfo, deadline `probeTimeoutMs`); `hangProbes`
 *   probes in a row with no answer open it (the coordinator hangs: SIGSTOP, a frozen host, a
 *   black-holed link). Deadlines count only time in which the gateway itself ran (responsive-delay.ts),
 *   so a gateway starved of CPU does not take its own lateness for a coordinator's silence.
 * - open: new calls fail at once with UNAVAILABLE (metadata `x-podium-circuit: open`, so a create knows
 *   it was never sent and goes elsewhere) and placement skips the coordinator. Calls already in flight
 *   keep waiting: a coordinator that is only slow still answers them.
 * - half-open, `cooldownMs` after opening: opossum lets exactly one call through, and that call is a
 *   probe, never a client's request. An answer closes the breaker; silence opens it for another
 *   cooldown and cuts the unary calls still waiting (the coordinator has not answered anything for
 *   several seconds: a create goes elsewhere, the coordinator drops it when it wakes up).
 *
 * Only failures of the connection count (call-failure.ts): an error the coordinator answered (NOT_FOUND,
 * RESOURCE_EXHAUSTED, a stream it refused, …) is an answer, and so is the caller's own cancellation.
 */
import { setMaxListeners } from "node:events";
import CircuitBreaker from "opossum";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { callFailure, CIRCUIT_OPEN_HEADER } from "./call-failure.js";
import { silentLogger, type Logger } from "../shared/logger.js";
import { responsiveDelay } from "../shared/responsive-delay.js";
import { compileBreakerOptions } from "./gateway-options.js";
import { eitherSignal } from "../shared/either-signal.js";

export type CircuitState = "closed" | "open" | "half_open";

export interface CoordinatorBreakerOptions {
  /** Connection failures in a row that open the breaker. Default 3. */
  failureThreshold?: number;
  /** How long the breaker stays open before a half-open probe. Default 2000. */
  cooldownMs?: number;
  /** A call waiting this long (with no answer from the coordinator meanwhile) triggers a probe. Default 2000 (a loaded 2-core host answers 500 ms late without hanging). */
  slowCallMs?: number;
  /** How long a probe waits for an answer. Default 2000. */
  probeTimeoutMs?: number;
  /** Probes in a row without an answer (while a call waits) that open the breaker. Default 2. */
  hangProbes?: number;
}

export interface CoordinatorBreakerDeps {
  coordinatorId: string;
  /** A cheap call to the coordinator that bypasses the breaker (GetCoordinatorInfo), cancelled by `signal`. */
  probe(signal: AbortSignal): Promise<unknown>;
  logger?: Logger;
  /** Called on every state change (metrics, tests). */
  onStateChange?(state: CircuitState): void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

export class CoordinatorBreaker {
  readonly coordinatorId: string;
  private readonly breaker: CircuitBreaker<[() => Promise<Outcome>], Outcome>;
  private readonly options: Required<CoordinatorBreakerOptions>;
  private readonly logger: Logger;
  private consecutive = 0;
  /** Aborted when a half-open probe gets no answer: unary calls still waiting are cut with it. Renewed on close. */
  private cut = cutController();
  /** Start times of calls waiting for their first answer. */
  private readonly waiting = new Set<{ since: number }>();
  private lastAnswerAt = Date.now();
  private watch: NodeJS.Timeout | undefined;
  private probing = false;
  private shutDown = false;

  constructor(
    private readonly deps: CoordinatorBreakerDeps,
    options: CoordinatorBreakerOptions = {},
  ) {
    this.coordinatorId = deps.coordinatorId;
    this.options = compileBreakerOptions(options);
    this.logger = deps.logger ?? silentLogger;
    // opossum's rate rule is off (a rate must EXCEED 100%): a streak of failures opens it explicitly.
    this.breaker = new CircuitBreaker((action: () => Promise<Outcome>) => action(), {
      name: `coordinator ${deps.coordinatorId}`,
      timeout: false,
      resetTimeout: this.options.cooldownMs,
      errorThresholdPercentage: 100,
      volumeThreshold: this.options.failureThreshold,
      allowWarmUp: false,
    });
    this.breaker.on("failure", () => {
      this.consecutive += 1;
      if (this.consecutive >= this.options.failureThreshold && this.breaker.closed) {
        this.trip(`${this.consecutive} calls in a row failed without an answer`);
      }
    });
    this.breaker.on("success", () => {
      this.consecutive = 0;
    });
    this.breaker.on("open", () => this.deps.onStateChange?.("open"));
    this.breaker.on("halfOpen", () => {
      this.deps.onStateChange?.("half_open");
      void this.halfOpenProbe();
    });
    this.breaker.on("close", () => {
      this.consecutive = 0;
      this.cut = cutController();
      this.logger.info("coordinator circuit closed: it answers again", { coordinator_id: this.coordinatorId });
      this.deps.onStateChange?.("closed");
    });
  }

  get state(): CircuitState {
    if (this.breaker.closed) return "closed";
    return this.breaker.halfOpen ? "half_open" : "open";
  }

  /** True while calls may go to the coordinator (placement and routing use it). */
  get available(): boolean {
    return !this.shutDown && this.breaker.closed;
  }

  /** The interceptor every call to the coordinator goes through (except probes and the message stream's messages, which use `guard`). */
  readonly interceptor: Interceptor = (next) => (req) =>
    // Unary calls still waiting are cut when the coordinator stays silent; streams end on their own (the gateway resumes them).
    this.guard(req.signal, (signal) => next(signal === undefined || signal === req.signal ? req : { ...req, signal }), !req.stream);

  /**
   * Runs one call to the coordinator through the breaker: refused at once while it is open, counted as a
   * failure only when no answer came (call-failure.ts), watched while it waits. `run` gets the signal to
   * pass on: the caller's, and with `cuttable` also the breaker's cut of calls a silent coordinator left waiting.
   */
  async guard<T>(callerSignal: AbortSignal | undefined, run: (signal: AbortSignal | undefined) => Promise<T>, cuttable = true): Promise<T> {
    if (!this.available) throw this.openError();
    const signal = cuttable ? eitherSignal(callerSignal, this.cut.signal) : callerSignal;
    const waiting = { since: Date.now() };
    this.waiting.add(waiting);
    this.startWatch();
    try {
      const outcome = await this.breaker.fire(async (): Promise<Outcome> => {
        try {
          return { ok: true, value: await run(signal) };
        } catch (error) {
          // Only a connection failure counts; an answer (any error the coordinator sent, a stream it turned away)
          // or our caller's abort does not.
          if (callerSignal?.aborted || !isConnectionFailure(error)) return { ok: false, error };
          throw error;
        }
      });
      this.lastAnswerAt = Date.now();
      if (!outcome.ok) throw outcome.error;
      return outcome.value as T;
    } catch (error) {
      if (isOpenBreakerError(error)) throw this.openError();
      // Cut because the coordinator stayed silent: it may have reached it, so it is not marked "never sent".
      if (signal?.aborted && !callerSignal?.aborted) throw new ConnectError(`coordinator ${this.coordinatorId} stopped answering (circuit open)`, Code.Unavailable);
      throw error;
    } finally {
      this.waiting.delete(waiting);
    }
  }

  /** Stops the timers; every later call fails as if the breaker were open. */
  close(): void {
    this.shutDown = true;
    clearInterval(this.watch);
    this.watch = undefined;
    this.breaker.shutdown();
  }

  private openError(): ConnectError {
    return new ConnectError(`coordinator ${this.coordinatorId} is not answering (circuit open); try again shortly`, Code.Unavailable, {
      [CIRCUIT_OPEN_HEADER]: "open",
    });
  }

  private trip(reason: string): void {
    if (this.shutDown || !this.breaker.closed) return;
    this.logger.warn("coordinator circuit opened: no placement or calls until a probe answers", {
      coordinator_id: this.coordinatorId,
      reason,
      cooldown_ms: this.options.cooldownMs,
    });
    this.breaker.open();
  }

  /** Checks waiting calls while there are any (one timer per coordinator, only while calls wait). */
  private startWatch(): void {
    if (this.watch) return;
    this.watch = setInterval(
      () => {
        if (this.waiting.size === 0) {
          clearInterval(this.watch);
          this.watch = undefined;
          return;
        }
        const now = Date.now();
        const oldest = Math.min(...[...this.waiting].map((w) => w.since));
        const { slowCallMs } = this.options;
        if (now - oldest >= slowCallMs && now - this.lastAnswerAt >= slowCallMs) void this.slowCallProbe();
      },
      Math.max(10, Math.floor(this.options.slowCallMs / 2)),
    );
    this.watch.unref();
  }

  /** A call has waited long with no answer from the coordinator meanwhile: is it still there? */
  private async slowCallProbe(): Promise<void> {
    if (this.probing || !this.available) return;
    this.probing = true;
    try {
      for (let silent = 1; ; silent++) {
        try {
          await this.probe();
          this.lastAnswerAt = Date.now();
          return;
        } catch (error) {
          const { slowCallMs, probeTimeoutMs, hangProbes } = this.options;
          if (silent >= hangProbes) {
            this.trip(`a call waited ${slowCallMs} ms and ${silent} probes in a row got no answer within ${probeTimeoutMs} ms each (${errorText(error)})`);
            return;
          }
          if (!this.available) return;
        }
      }
    } finally {
      this.probing = false;
    }
  }

  /** The single trial call opossum allows when half-open: a probe (success closes, failure re-opens). */
  private async halfOpenProbe(): Promise<void> {
    if (this.shutDown) return;
    try {
      const outcome = await this.breaker.fire(async () => ({ ok: true, value: await this.probe() }));
      if (outcome.ok) this.lastAnswerAt = Date.now();
    } catch (error) {
      if (this.shutDown) return;
      this.logger.warn("coordinator circuit stays open: the probe got no answer; calls still waiting are cut", { coordinator_id: this.coordinatorId, error: errorText(error) });
      this.cut.abort();
    }
  }

  /** Resolves when the coordinator answered (even with an error), rejects when it did not within the probe deadline. */
  private async probe(): Promise<void> {
    const controller = new AbortController();
    const answer = this.deps.probe(controller.signal).then(
      () => ({ answered: true, error: undefined }),
      (error: unknown) => ({ answered: !isConnectionFailure(error), error }),
    );
    const deadline = responsiveDelay(this.options.probeTimeoutMs, controller.signal).then(() => undefined);
    const result = await Promise.race([answer, deadline]);
    controller.abort(); // stops the deadline, or gives up on the probe
    if (result === undefined) throw new ConnectError(`no answer within ${this.options.probeTimeoutMs} ms`, Code.DeadlineExceeded);
    if (!result.answered) throw result.error;
  }
}

/** No answer at all: the connection failed, or nothing came back in time. */
function isConnectionFailure(error: unknown): boolean {
  const failure = callFailure(error);
  return failure === "not_sent" || failure === "no_answer";
}

/**
 * The breaker's cut of waiting calls: one listener per call waiting on it (a message with no caller's signal
 * listens on it directly), so a busy coordinator has many; not a leak.
 */
function cutController(): AbortController {
  const controller = new AbortController();
  setMaxListeners(0, controller.signal);
  return controller;
}

function isOpenBreakerError(error: unknown): boolean {
  return error instanceof Error && (error as Error & { code?: unknown }).code === "EOPENBREAKER";
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
