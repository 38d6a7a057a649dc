/**
 * An instance's record of what happens: events persisted to messages.db before its subscribers see
 * them, log lines to logs.db (the agent's within a budget), and the subscribers themselves. It writes
 * through the store of the instance's current process; a hibernated instance has none, and nothing is
 * recorded then (only `terminated` reaches subscribers, unrecorded, like a fenced instance's).
 */
import { LogBudget } from "./log-budget.js";
import type { CaptureOutcome, UpdateSubscriber } from "./agent-instance-options.js";
import type { AgentStore } from "./store/agent-store.js";
import type { MessageRow, NewMessage } from "./store/message-log.js";
import type { LogLevel, LogSource } from "./store/log-store.js";
import type { JsonObject } from "../shared/json.js";
import type { Logger } from "../shared/logger.js";
import { errorMessage } from "../shared/errors.js";
import { INBOUND_MESSAGE_TYPE, PlatformEvent } from "../shared/platform-events.js";

export type EventRecord = { messageType: string; content: JsonObject | undefined; turn: number };

export interface JournalOptions {
  instanceId: string;
  agentId: string;
  logger: Logger;
  /** May the agent's databases be written? False once the instance was fenced (or its lease lost). */
  writable: () => boolean;
  /** Called with each batch of events once stored. */
  onRecorded?: ((rows: readonly MessageRow[]) => void) | undefined;
}

export class InstanceJournal {
  /** The newest seq recorded for the agent (kept while no store is open). */
  lastSeq: number;
  /** The newest seq subscribers could have received (outbound; inbound rows are not streamed). */
  private lastOutboundSeq: number;
  private readonly subscribers = new Set<UpdateSubscriber>();
  private readonly logBudget = new LogBudget();

  constructor(
    private readonly options: JournalOptions,
    /** The databases of the current process; undefined while hibernated. */
    public store: AgentStore | undefined,
    lastSeq = store?.messages.lastSeq() ?? 0,
  ) {
    this.lastSeq = lastSeq;
    this.lastOutboundSeq = this.lastSeq;
  }

  /** A new process's databases (a wake): the history may have moved on (restored from S3). */
  reopen(store: AgentStore): void {
    this.store = store;
    this.lastSeq = store.messages.lastSeq();
    this.lastOutboundSeq = this.lastSeq;
  }

  /** Records an acknowledged inbound message (through `via`, which writes it with more, when given); its seq names its turn. */
  appendInbound(store: AgentStore, content: JsonObject, via?: (message: NewMessage) => MessageRow): MessageRow {
    const message: NewMessage = { direction: "inbound", instanceId: this.options.instanceId, turn: 0, messageType: INBOUND_MESSAGE_TYPE, content, timestamp: Date.now() };
    const row = via ? via(message) : store.messages.append(message);
    this.lastSeq = row.seq;
    return row;
  }

  subscribe(subscriber: UpdateSubscriber): () => void {
    this.subscribers.add(subscriber);
    return () => this.subscribers.delete(subscriber);
  }

  /** No more updates will come. */
  endSubscribers(): void {
    for (const subscriber of this.subscribers) subscriber.onEnd();
    this.subscribers.clear();
  }

  emit(messageType: string, content: JsonObject | undefined, turn: number): void {
    this.emitMany([{ messageType, content, turn }]);
  }

  /** Persists events (one transaction), then hands them to subscribers. */
  emitMany(events: EventRecord[]): void {
    if (events.length === 0) return;
    const timestamp = Date.now();
    const { instanceId } = this.options;
    const outbound = events.map((e) => ({ direction: "outbound" as const, instanceId, turn: e.turn, messageType: e.messageType, content: e.content, timestamp }));
    let rows: MessageRow[];
    if (this.store && this.options.writable()) {
      rows = this.store.messages.appendMany(outbound);
      this.lastSeq = rows[rows.length - 1]?.seq ?? this.lastSeq;
      this.lastOutboundSeq = this.lastSeq;
      this.options.onRecorded?.(rows);
    } else {
      // Fenced or hibernated: only `terminated` reaches subscribers, and it is not recorded (a fenced agent's
      // history is the new owner's). It repeats the last seq, as the gateway's own does: the next writer may
      // write lastSeq + 1, and a client resuming with after_seq = this seq must not skip it.
      rows = outbound.filter((e) => e.messageType === PlatformEvent.terminated).map((e) => ({ ...e, seq: this.lastOutboundSeq }));
    }
    for (const subscriber of this.subscribers) {
      try {
        for (const row of rows) subscriber.onUpdate(row);
      } catch (err) {
        this.options.logger.error("subscriber failed", { instance_id: instanceId, error: errorMessage(err) });
      }
    }
  }

  /**
   * Records what a workspace capture found (`workspace.changed`, and `error` past the quota) while `current()`
   * holds; a failed capture is logged. `capture` is the sync capture or the pending async one.
   */
  async recordCaptureOf(capture: (() => CaptureOutcome) | Promise<CaptureOutcome>, turn: number, current: () => boolean): Promise<void> {
    this.emitMany(await this.captureEvents(capture, turn, current));
  }

  /**
   * A synchronous capture's events, now, for the caller to record in the same transaction as what follows them
   * (an exit's `terminated`, `hibernated`); a failed capture is logged and records nothing.
   */
  captureNow(capture: () => CaptureOutcome, turn: number): EventRecord[] {
    if (!this.options.writable()) return [];
    try {
      return captureRecords(capture(), turn);
    } catch (err) {
      this.log("error", "platform", `workspace capture failed: ${errorMessage(err)}`);
      return [];
    }
  }

  /** The events recordCaptureOf would record, for the caller to record with more in the same transaction. */
  async captureEvents(capture: (() => CaptureOutcome) | Promise<CaptureOutcome>, turn: number, current: () => boolean): Promise<EventRecord[]> {
    if (!this.options.writable()) return [];
    try {
      const result = typeof capture === "function" ? capture() : await capture;
      return current() && this.options.writable() ? captureRecords(result, turn) : [];
    } catch (err) {
      if (current()) this.log("error", "platform", `workspace capture failed: ${errorMessage(err)}`);
      return [];
    }
  }

  log(level: LogLevel, source: LogSource, message: string, fields?: JsonObject): void {
    const charged = source === "platform" ? "record" : this.logBudget.charge(message, fields !== undefined);
    if (charged === "exhausted") this.log("warn", "platform", `the agent wrote more than ${this.logBudget.limitMiB} MiB of logs; further output of this instance is dropped`);
    if (charged !== "record") return;
    const { instanceId, agentId, logger } = this.options;
    try {
      if (this.store && this.options.writable()) this.store.logs.append({ level, source, message, instanceId, ...(fields ? { fields } : {}) });
    } catch (err) {
      logger.error("could not write agent log", { instance_id: instanceId, error: errorMessage(err) });
    }
    if (source === "platform") logger[level](message, { instance_id: instanceId, agent_id: agentId });
  }
}

/** The events of what a capture found: `workspace.changed`, and `error` past the quota; none when nothing changed. */
export function captureRecords(result: CaptureOutcome, turn: number): EventRecord[] {
  if (!result) return [];
  const events: EventRecord[] = [{ messageType: PlatformEvent.workspaceChanged, content: { iteration: result.iteration, files: result.files }, turn }];
  if (result.quotaExceeded) events.push({ messageType: PlatformEvent.error, content: { message: "workspace quota exceeded", code: "resource_exhausted" }, turn });
  return events;
}

/** A turn that will not run (further): its `error`, then `turn.done` (ok: false), the turn's last event. */
export function turnFailed(turn: number, error: JsonObject): EventRecord[] {
  return [
    { messageType: PlatformEvent.error, content: error, turn },
    { messageType: PlatformEvent.turnDone, content: { turn, ok: false }, turn },
  ];
}

/**
 * The events that end a turn whose turn_done arrived: `error` (the handler's, or why it was interrupted) or
 * `complete` (when the agent sent no end event of its own), then `turn.done`, the turn's last event.
 */
export function turnEnded(turn: number, outcome: { error: string | undefined; interrupted: string | undefined; ended: boolean }): EventRecord[] {
  const { error, interrupted } = outcome;
  const events: EventRecord[] = [];
  if (error !== undefined) events.push({ messageType: PlatformEvent.error, content: { message: error }, turn });
  else if (interrupted !== undefined) events.push({ messageType: PlatformEvent.error, content: { message: interrupted, code: "cancelled", turn }, turn });
  else if (!outcome.ended) events.push({ messageType: PlatformEvent.complete, content: {}, turn });
  events.push({ messageType: PlatformEvent.turnDone, content: { turn, ok: error === undefined && interrupted === undefined, ...(interrupted !== undefined ? { cancelled: true } : {}) }, turn });
  return events;
}
