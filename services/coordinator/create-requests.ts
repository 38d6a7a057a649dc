/**
 * Idempotent creates: CreateInstance calls that carry the same `request_id` (a gateway retrying after a
 * connection reset) share one create instead of starting a second agent. A create with an id is
 * remembered for `retentionMs` after it succeeded; a failed one is forgotten at once, so a retry
 * starts afresh.
 *
 * A create belongs to the callers waiting for it, not to the first one: it is cancelled only when every
 * caller has gone (their calls were cancelled or their connection dropped), and a create that finishes
 * after all its callers left is discarded (`discard`, e.g. the instance is stopped), so a create
 * nobody received an answer for never leaves an agent running that no client knows about.
 */
import { Code, ConnectError } from "@connectrpc/connect";

export interface CreateRequestsOptions<T> {
  /** Undoes a create whose callers all left before it finished. */
  discard(value: T): void | Promise<void>;
  /** How long a finished create is remembered. Default 5 min. */
  retentionMs?: number;
  /** Most creates remembered at once (the oldest are forgotten first). Default 10,000. */
  maxEntries?: number;
  now?: () => number;
}

interface Entry<T> {
  readonly promise: Promise<T>;
  readonly controller: AbortController;
  callers: number;
  /** Set once the create finished (successfully); until then the entry never expires. */
  doneAt: number | undefined;
}

export class CreateRequests<T> {
  private readonly entries = new Map<string, Entry<T>>();
  private readonly retentionMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(private readonly options: CreateRequestsOptions<T>) {
    this.retentionMs = options.retentionMs ?? 5 * 60_000;
    this.maxEntries = options.maxEntries ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** Creates remembered right now (in flight or finished within the retention). */
  get size(): number {
    return this.entries.size;
  }

  /**
   * Runs `create` for `requestId` (or joins the create already running or done for it) on behalf of a
   * caller whose call is cancelled by `signal`. An empty id runs a create of its own, never shared.
   */
  run(requestId: string, signal: AbortSignal, create: (signal: AbortSignal) => Promise<T>): Promise<T> {
    if (signal.aborted) return Promise.reject(cancelled());
    if (!requestId) return this.attach(this.start(create), signal, () => undefined);
    this.sweep();
    let entry = this.entries.get(requestId);
    if (!entry) {
      const started = this.start(create);
      entry = started;
      this.entries.set(requestId, started);
      started.promise.then(
        () => (started.doneAt = this.now()),
        () => this.entries.get(requestId) === started && this.entries.delete(requestId),
      );
    }
    const joined = entry;
    return this.attach(joined, signal, () => this.entries.get(requestId) === joined && this.entries.delete(requestId));
  }

  private start(create: (signal: AbortSignal) => Promise<T>): Entry<T> {
    const controller = new AbortController();
    const entry: Entry<T> = { promise: Promise.resolve().then(() => create(controller.signal)), controller, callers: 0, doneAt: undefined };
    // Finished after every caller left: nobody will learn about it, so it is undone.
    entry.promise.then(
      (value) => {
        if (entry.callers === 0) void Promise.resolve(this.options.discard(value)).catch(() => undefined);
      },
      () => undefined,
    );
    return entry;
  }

  /** `forget` drops the entry when its last caller leaves before it finished (a later retry starts afresh). */
  private attach(entry: Entry<T>, signal: AbortSignal, forget: () => void): Promise<T> {
    entry.callers++;
    return new Promise<T>((resolve, reject) => {
      let attached = true;
      const detach = (): void => {
        if (!attached) return;
        attached = false;
        entry.callers--;
        signal.removeEventListener("abort", onAbort);
      };
      const onAbort = (): void => {
        detach();
        if (entry.callers === 0 && entry.doneAt === undefined) {
          forget();
          entry.controller.abort(cancelled());
        }
        reject(cancelled());
      };
      signal.addEventListener("abort", onAbort, { once: true });
      entry.promise.then(
        (value) => {
          if (!attached) return;
          detach();
          resolve(value);
        },
        (error: unknown) => {
          if (!attached) return;
          detach();
          reject(error);
        },
      );
    });
  }

  /** Forgets finished creates past their retention, and the oldest ones beyond `maxEntries`. */
  private sweep(): void {
    const cutoff = this.now() - this.retentionMs;
    for (const [id, entry] of this.entries) {
      if (entry.doneAt !== undefined && entry.doneAt < cutoff) this.entries.delete(id);
    }
    for (const [id, entry] of this.entries) {
      if (this.entries.size < this.maxEntries) break;
      if (entry.doneAt !== undefined) this.entries.delete(id);
    }
  }
}

function cancelled(): ConnectError {
  return new ConnectError("the create was cancelled by its caller", Code.Canceled);
}
