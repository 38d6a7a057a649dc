/**
 * One instance of an agent: the turn queue, the event log (every event is persisted to messages.db
 * before anyone sees it), state deltas, workspace capture, stop and crash handling, and hibernation:
 * an idle instance's process ends (its databases and sandbox are closed by the manager) while the
 * instance and its subscribers stay; wake() starts a new process from the persisted state.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { AgentProcessHandle, ProcessExitInfo } from "./agent-process.js";
import { loadInitLine } from "./instance-process.js";
import { defaultProcessFactory } from "./instance-factories.js";
import {
  TurnTrace,
  type AgentInstanceOptions,
  type CaptureOutcome,
  type InstanceExit,
  type InstanceIdentity,
  type InstanceIncarnation,
  type InstanceStatusName,
  type SentMessage,
  type UpdateSubscriber,
} from "./agent-instance-options.js";
import { TURN_END_EVENTS, type AgentToHost } from "./agent-protocol.js";
import { OpenRequests, RESOLVED_EVENT } from "./open-requests.js";
import { ProcessStart } from "./process-start.js";
import { captureRecords, InstanceJournal, turnEnded, turnFailed, type EventRecord } from "./instance-journal.js";
import { endQueuedTurns, settleUnfinishedTurns, type UnfinishedTurn as PendingTurn } from "./unfinished-turns.js";
import { TurnTimer } from "./turn-timer.js";
import type { AgentRuntime } from "./runtime-commands.js";
import type { AgentStore } from "./store/agent-store.js";
import type { MessageRow, NewMessage } from "./store/message-log.js";
import type { Json, JsonObject } from "../shared/json.js";
import { errorMessage } from "../shared/errors.js";
import { DEFAULT_BUSY_POLICY, type BusyPolicy } from "../shared/busy-policy.js";
import { PlatformEvent } from "../shared/platform-events.js";

interface RunningTurn extends PendingTurn {
  ended: boolean;
  /** turn_done arrived (with its error, if any); the turn ends once the workspace capture is recorded. */
  done?: { error: string | undefined };
  timer: TurnTimer;
  /** A newer message interrupted this turn (on_busy "interrupt"): it ends as cancelled, with this message. */
  interrupted?: string;
}

export class AgentInstance {
  readonly instanceId: string;
  readonly agentId: string;
  readonly deploymentId: string;
  readonly runtime: AgentRuntime;
  readonly createdAt: number;
  readyAt: number | undefined;
  endedAt: number | undefined;
  exit: InstanceExit | undefined;
  status: InstanceStatusName = "starting";
  /** When it hibernated; undefined while awake. */
  hibernatedAt: number | undefined;
  /** Since when it has been idle (ready, nothing running or queued); undefined while not. */
  idleSince: number | undefined;
  /** Settles when the process has exited and `terminated` was recorded. */
  readonly ended: Promise<void>;
  /** Settles when the current process is gone (its databases and sandbox may close): "ended", or "hibernated"; renewed by wake(). */
  processGone!: Promise<"ended" | "hibernated">;

  private readonly options: InstanceIdentity;
  /** The current process's launch, databases and capture; undefined while hibernated. */
  private body: InstanceIncarnation | undefined;
  private readonly journal: InstanceJournal;
  private settleGone!: (how: "ended" | "hibernated") => void;
  /** hibernate() asked the process to end: its exit hibernates instead of ending the instance. */
  private sleeping = false;
  /** Set by wake(): the `woke` event is recorded once the new process is ready, before any turn runs. */
  private wokeAfterMs: number | undefined;
  private readonly queue: PendingTurn[] = [];
  private current: RunningTurn | undefined;
  private process: AgentProcessHandle | undefined;
  private stopRequested = false;
  /** Why the platform killed the process, when it did (turn timeout). */
  private killReason: string | undefined;
  private markEnded!: () => void;
  /** The current process's start: its steps and stderr (quoted in start-up errors), and the wait for `ready`. */
  private starting: ProcessStart | undefined;
  /** Requests the agent asked (content.request_id) and no one answered yet. */
  private readonly openRequests = new OpenRequests();
  /** Set when the instance was fenced (another coordinator owns the agent): nothing is written after it. */
  private fencedReason: string | undefined;
  /** start() succeeded: turns run from now on. An instance that never served leaves its queue unfinished. */
  private serving = false;

  /** A new instance (with its first process's launch and databases), or one restored hibernated (`asleep`). */
  constructor(options: AgentInstanceOptions | (InstanceIdentity & { asleep: { lastSeq: number; createdAt: number } })) {
    const { instanceId, agentId, deploymentId, runtime, agentEnv, limits, onBusy, onIdle, onSchedule, onRecorded, logger, mayWrite, processFactory, ...rest } = options;
    this.options = { instanceId, agentId, deploymentId, runtime, agentEnv, limits, logger, onBusy, onIdle, onSchedule, mayWrite, processFactory };
    const asleep = "asleep" in rest ? rest.asleep : undefined;
    const body = "asleep" in rest ? undefined : rest;
    this.body = body;
    this.createdAt = asleep?.createdAt ?? Date.now();
    if (asleep) [this.status, this.hibernatedAt] = ["hibernated", Date.now()];
    this.instanceId = instanceId;
    this.agentId = agentId;
    this.deploymentId = deploymentId;
    this.runtime = runtime;
    this.ended = new Promise((resolve) => (this.markEnded = resolve));
    this.journal = new InstanceJournal({ instanceId, agentId, logger, writable: () => this.writable(), onRecorded }, body?.store, asleep?.lastSeq);
    this.newProcessGone();
    if (asleep) this.settleGone("hibernated"); // restored without a process: nothing to wait for
  }

  private newProcessGone(): void {
    this.processGone = new Promise((resolve) => (this.settleGone = resolve));
  }

  /** The newest seq recorded for the agent (kept after the instance ended and its store closed). */
  get lastSeq(): number {
    return this.journal.lastSeq;
  }

  get pid(): number {
    return this.process?.alive ? this.process.pid : 0;
  }

  /** Its deployment's idle time before it hibernates. */
  get hibernateAfterMs(): number {
    return this.options.limits.hibernateAfterMs;
  }

  /** Ready, with no turn running and none queued. */
  get idle(): boolean {
    return this.status === "ready" && !this.current && this.queue.length === 0;
  }

  /** Kills the process for a platform limit; `reason` is the `terminated` event's and the log's. */
  kill(reason: string): void {
    if (!this.live || this.killReason !== undefined) return;
    this.killReason = reason;
    this.journal.log("error", "platform", `killing the agent: ${reason}`);
    this.process?.kill("SIGKILL");
  }

  get queuedMessages(): number {
    return this.queue.length;
  }

  get live(): boolean {
    return this.status !== "terminated" && this.status !== "failed";
  }

  /** The databases of the current process (FailedPrecondition while hibernated). */
  get store(): AgentStore {
    if (!this.body) throw new ConnectError(`instance ${this.instanceId} is hibernated`, Code.FailedPrecondition);
    return this.body.store;
  }

  /** Idle for a while: its databases give their page caches back (AgentStore.releaseMemory, Chronicle's too). */
  releaseMemory(): void {
    this.body?.store.releaseMemory();
    this.body?.workspaceCapture?.releaseMemory?.();
  }

  /** A process (and its databases) exists: not hibernated. */
  get awake(): boolean {
    return this.body !== undefined;
  }

  /**
   * Spawns the process and resolves when the agent said `ready`; rejects (and cleans up) otherwise. First it
   * settles what an earlier process left unfinished (unfinished-turns.ts): begun turns fail, waiting ones queue.
   */
  async start(signal?: AbortSignal): Promise<void> {
    if (!this.body) throw new ConnectError(`instance ${this.instanceId} is hibernated`, Code.FailedPrecondition);
    const options = { ...this.options, ...this.body };
    const starting = (this.starting = new ProcessStart(this.journal));
    this.recoverUnfinishedTurns();
    const handlers = starting.handlers(
      () => this.readyAt !== undefined,
      (frames) => this.onFrames(frames),
    );
    this.process = (options.processFactory ?? defaultProcessFactory)(options, handlers, (what) => starting.step(what));
    this.journal.log("info", "platform", `instance ${this.instanceId} starting (pid ${this.process.pid}${options.process ? ", a warm runner" : ""})`);
    void this.process.exited.then((info) => this.onExit(info));
    let init: Uint8Array[];
    try {
      init = await loadInitLine(options, signal); // while the runtime starts
    } catch (err) {
      // Unreadable or beyond what one string can hold: the process spawned above must not be left running.
      this.process.kill("SIGKILL");
      await this.ended;
      if (signal?.aborted) throw new ConnectError("instance creation was cancelled", Code.Canceled);
      throw err instanceof ConnectError ? err : new ConnectError(`cannot load the agent's state: ${errorMessage(err)}`, Code.ResourceExhausted);
    }
    starting.sendInit(this.process, init, options.beforeInit);
    if (!options.process && this.writable()) this.store.prime(); // while the runtime starts: the first writes (`woke`, the first turn's) cost what later ones do
    try {
      await starting.wait(options.limits.startTimeoutMs, signal, options.cpuUsageMicros);
      // Ready just as the create was cancelled: no one will know this instance, so it must not run.
      if (signal?.aborted) throw new ConnectError("instance creation was cancelled", Code.Canceled);
      // Fenced while it started, or even before its process was spawned (the lease was lost): it must not serve.
      if (this.fencedReason !== undefined) throw new ConnectError(`instance ${this.instanceId} was stopped: ${this.fencedReason}`, Code.Unavailable);
    } catch (err) {
      this.process.kill("SIGKILL");
      await this.ended;
      throw err;
    }
    this.serving = true;
    if (this.wokeAfterMs !== undefined) {
      this.journal.emit(PlatformEvent.woke, { hibernated_ms: this.wokeAfterMs }, 0);
      this.journal.log("info", "platform", `instance ${this.instanceId} woke after ${this.wokeAfterMs} ms of hibernation`);
      [this.wokeAfterMs, this.hibernatedAt] = [undefined, undefined];
    }
    this.pump();
  }

  /** Ends an idle instance's process, not the instance (onHibernate, `hibernated`, processGone "hibernated"); false unless idle. */
  hibernate(graceMs = this.options.limits.stopGraceMs): boolean {
    const process = this.process;
    if (!this.idle || !this.serving || this.stopRequested || this.fencedReason !== undefined || !process?.alive) return false;
    this.sleeping = true;
    this.status = "hibernated";
    this.hibernatedAt = Date.now();
    process.send({ type: "stop", graceMs, hibernate: true });
    process.endInput();
    const timer = setTimeout(() => process.kill("SIGKILL"), graceMs);
    void this.processGone.then(() => clearTimeout(timer));
    return true;
  }

  /** Gives a hibernated instance its reopened databases and sandbox; start() then runs it and records `woke`. */
  wake(body: InstanceIncarnation, refresh: Partial<Pick<InstanceIdentity, "limits" | "onBusy" | "agentEnv">> = {}): void {
    if (this.status !== "hibernated" || this.body || this.sleeping) throw new ConnectError(`instance ${this.instanceId} is ${this.status}, not hibernated`, Code.FailedPrecondition);
    Object.assign(this.options, refresh);
    this.body = body;
    this.journal.reopen(body.store); // where the history ends now (a wake may have restored it from S3)
    [this.status, this.killReason, this.exit, this.readyAt] = ["starting", undefined, undefined, undefined];
    this.wokeAfterMs = Date.now() - (this.hibernatedAt ?? Date.now());
    this.newProcessGone();
  }

  /**
   * Records an inbound message and queues it as a turn. While the agent is busy (a turn running or queued),
   * `strategy` (default: the deployment's on_busy) decides: enqueue, reject (nothing recorded), or interrupt
   * (the running turn is cancelled, queued ones superseded, this one runs next). busy-policy.ts.
   */
  send(content: JsonObject, strategy?: BusyPolicy, via?: (message: NewMessage) => MessageRow, trace?: TurnTrace): SentMessage {
    if (this.status === "hibernated") throw new ConnectError(`instance ${this.instanceId} is hibernated; wake it first`, Code.FailedPrecondition);
    if (!this.live || this.status === "stopping") {
      throw new ConnectError(`instance ${this.instanceId} is ${this.status}${this.fencedReason ? `: ${this.fencedReason}` : ""}`, Code.FailedPrecondition);
    }
    if (!this.writable()) throw new ConnectError(`instance ${this.instanceId} was stopped: ${this.fencedReason ?? "fenced"}`, Code.Unavailable);
    const size = Buffer.byteLength(JSON.stringify(content));
    if (size > this.options.limits.maxMessageBytes) {
      throw new ConnectError(`message is ${size} bytes; the limit is ${this.options.limits.maxMessageBytes}`, Code.InvalidArgument);
    }
    const policy = strategy ?? this.options.onBusy ?? DEFAULT_BUSY_POLICY;
    const busyWith = this.current?.turn ?? this.queue[0]?.turn;
    if (busyWith !== undefined && policy === "reject") {
      throw new ConnectError(
        `instance ${this.instanceId} is busy with turn ${busyWith} and rejects messages meanwhile (on_busy "reject"): nothing was recorded; send it again after that turn's turn.done, or with multitask_strategy "enqueue" or "interrupt"`,
        Code.Aborted,
      );
    }
    if (policy !== "interrupt" && this.queue.length >= this.options.limits.maxQueuedMessages) {
      throw new ConnectError(`instance ${this.instanceId} has ${this.queue.length} queued messages; the limit is ${this.options.limits.maxQueuedMessages}`, Code.ResourceExhausted);
    }
    const row = this.journal.appendInbound(this.store, content, via);
    // A turn is named after the seq of the message that started it: unique and increasing per agent.
    const turn = row.seq;
    const cancelledTurns = busyWith !== undefined && policy === "interrupt" ? this.interrupt(turn) : [];
    const queuePosition = this.queue.length + (this.current ? 1 : 0);
    this.queue.push({ turn, content, trace: trace?.queued(turn, this.agentId, this.deploymentId, queuePosition) });
    this.pump();
    return { seq: row.seq, turn, queuePosition, cancelledTurns };
  }

  /** on_busy "interrupt": queued turns end at once (cancelled), the running one is asked to cancel; returns them. */
  private interrupt(by: number): number[] {
    const why = `(on_busy "interrupt": turn ${by} runs instead)`;
    const superseded = TurnTrace.dropped(this.queue.splice(0), `cancelled before it ran ${why}`);
    this.journal.emitMany(superseded.flatMap((turn) => turnFailed(turn, { message: `cancelled before it ran ${why}`, code: "cancelled", turn })));
    const current = this.current;
    if (!current || current.done || current.ended) return superseded;
    current.interrupted = `cancelled ${why}`;
    this.process?.send({ type: "cancel", turn: current.turn });
    return [current.turn, ...superseded];
  }

  /** Records and streams an event of the platform's own (turn 0), e.g. `schedule.fired`. */
  platformEvent(messageType: string, content: JsonObject): void {
    this.journal.emit(messageType, content, 0);
  }

  /** Delivers every update recorded from now on; replay of history is the caller's (see streamInstanceUpdates). */
  subscribe(subscriber: UpdateSubscriber): () => void {
    if (!this.live && this.endedAt !== undefined) {
      subscriber.onEnd();
      return () => undefined;
    }
    return this.journal.subscribe(subscriber);
  }

  /** Asks the agent to cancel the running turn; returns the turn, or undefined when none matched. */
  cancelTurn(turn?: number): number | undefined {
    const current = this.current;
    if (!current || (turn !== undefined && current.turn !== turn)) return undefined;
    this.process?.send({ type: "cancel", turn: current.turn });
    return current.turn;
  }

  /** Relays an answer to an open ask/permission request (recorded as `tool.approval_resolved`); NotFound if none is open. */
  answer(requestId: string, value: Json): void {
    if (!this.live || !this.process?.alive) throw new ConnectError(`instance ${this.instanceId} is ${this.status}`, Code.FailedPrecondition);
    if (!this.openRequests.take(requestId)) {
      throw new ConnectError(`instance ${this.instanceId} has no open request ${JSON.stringify(requestId.slice(0, 128))} (never asked, or already answered)`, Code.NotFound);
    }
    this.journal.emit(RESOLVED_EVENT, { request_id: requestId, value }, this.current?.turn ?? 0);
    this.process.send({ type: "answer", id: requestId, value });
  }

  /** `terminating`, the agent's onStop within `graceMs`, SIGKILL after it, then `terminated`. */
  async stop(graceMs = this.options.limits.stopGraceMs): Promise<void> {
    if (!this.live) return this.ended;
    if (this.status === "hibernated") {
      await this.processGone; // falling asleep: its process ends first
      if (this.status !== "hibernated") return this.stop(graceMs); // woke meanwhile
      this.endAsleep("stopped");
      return this.ended;
    }
    if (!this.stopRequested) {
      this.stopRequested = true;
      this.status = "stopping";
      this.journal.emit(PlatformEvent.terminating, { grace_ms: graceMs }, this.current?.turn ?? 0);
      this.process?.send({ type: "stop", graceMs });
      this.process?.endInput();
      const timer = setTimeout(() => this.process?.kill("SIGKILL"), graceMs);
      void this.ended.then(() => clearTimeout(timer));
    }
    return this.ended;
  }

  /**
   * Ends the instance without writing anything more to the agent's databases: another coordinator owns
   * the agent now (its lease was lost). The process is killed; subscribers still get `terminated`.
   */
  fence(reason: string): void {
    if (this.fencedReason !== undefined || !this.live) return;
    this.fencedReason = reason;
    if (!this.body) return this.endAsleep(reason);
    this.killReason = reason;
    this.stopRequested = true;
    this.status = "stopping";
    this.options.logger.warn("instance fenced", { instance_id: this.instanceId, agent_id: this.agentId, reason });
    this.process?.kill("SIGKILL");
  }

  /** May this instance still write the agent's databases? Fences it the first time the answer is no. */
  private writable(): boolean {
    if (this.fencedReason !== undefined) return false;
    if (this.options.mayWrite && !this.options.mayWrite()) {
      this.fence("this coordinator lost the agent's single-writer lease (another coordinator took the agent over)");
      return false;
    }
    return true;
  }

  /**
   * Runs of events are persisted in one transaction, then broadcast; other frames keep their order. A turn's end
   * that needs no wait (finishTurn) and a patch's `state.delta` join the run: one transaction, one batch each.
   */
  private onFrames(frames: AgentToHost[]): void {
    let run: EventRecord[] = [];
    const flush = () => {
      const records = run;
      run = [];
      if (records.length === 0) return;
      try {
        this.journal.emitMany(records);
      } catch (err) {
        // Nothing of it reached a client; the instance cannot go on without its log (its turn would never end).
        this.options.logger.error("could not record the agent's output", { instance_id: this.instanceId, agent_id: this.agentId, error: errorMessage(err) });
        this.kill(`could not record the agent's output: ${errorMessage(err)}`);
      }
    };
    for (const frame of frames) {
      if (frame.type === "turn_done") {
        const ended = this.finishTurn(frame.turn, frame.error?.message, run);
        flush();
        if (ended) this.turnRecorded(ended);
        continue;
      }
      if (frame.type === "state_patch") {
        run.push(...this.applyState(frame.ops, frame.turn));
        continue;
      }
      if (frame.type !== "event") {
        flush();
        this.onFrame(frame);
        continue;
      }
      if (this.current && frame.turn === this.current.turn && TURN_END_EVENTS.has(frame.messageType)) this.current.ended = true;
      this.openRequests.track(frame.messageType, frame.content);
      run.push({ messageType: frame.messageType, content: frame.content, turn: frame.turn });
    }
    flush();
  }

  /** A frame other than the run's (onFrames): a start's, a log line, a request of the agent's. */
  private onFrame(frame: Exclude<AgentToHost, { type: "event" | "turn_done" | "state_patch" }>): void {
    switch (frame.type) {
      case "ready":
        if (this.starting && !this.starting.readyFrame(frame.protocol)) return;
        this.readyAt = Date.now();
        if (this.status === "starting") this.status = "ready";
        this.journal.log("info", "platform", `instance ready (${frame.runtime} sdk ${frame.sdk})`);
        this.pump();
        return;
      case "fatal":
        this.journal.log("error", "agent", `agent failed: ${frame.error.message}`, frame.error.stack ? { stack: frame.error.stack } : undefined);
        this.starting?.fail(new ConnectError(`agent failed to start: ${frame.error.message}`, Code.FailedPrecondition));
        return;
      case "log":
        this.journal.log(frame.level, "agent", frame.message, frame.fields);
        return;
      case "stopped":
        this.journal.log("info", "platform", "agent stopped");
        return;
      case "schedule":
        this.process?.send({ type: "answer", id: frame.id, value: (this.writable() && this.options.onSchedule?.(frame)) || { error: "schedules are not available to this instance" } });
        return;
    }
  }

  /** Applies a patch to state.db; its `state.delta` event to record, none when it changed nothing or was refused. */
  private applyState(ops: Parameters<AgentStore["state"]["apply"]>[0], turn: number): EventRecord[] {
    if (ops.length === 0 || !this.writable()) return [];
    try {
      const { version } = this.store.state.apply(ops, { instanceId: this.instanceId, turn });
      return [{ messageType: PlatformEvent.stateDelta, content: { version, patch: ops }, turn }];
    } catch (err) {
      this.journal.log("error", "platform", `rejected state patch: ${errorMessage(err)}`);
      return [];
    }
  }

  private recoverUnfinishedTurns(): void {
    if (this.lastSeq === 0 || !this.writable()) return; // a new agent: nothing was ever acknowledged
    // Acknowledged before, so the queue limit does not refuse them; it applies to what is sent from now on.
    this.queue.unshift(...settleUnfinishedTurns(this.store.messages, this.journal));
  }

  private pump(): void {
    if (!this.serving || this.current || this.status !== "ready" || this.stopRequested || this.killReason !== undefined || !this.process?.alive) return;
    const next = this.queue.shift();
    if (!next) {
      if (this.idleSince === undefined) {
        this.idleSince = Date.now();
        this.options.onIdle?.();
      }
      return;
    }
    this.idleSince = undefined;
    const { maxTurnMs, turnKillGraceMs } = this.options.limits;
    const turn = next.turn;
    const timer = new TurnTimer(maxTurnMs, turnKillGraceMs, {
      cancel: () => {
        this.journal.log("warn", "platform", `turn ${turn} exceeded ${maxTurnMs} ms; cancelling`);
        this.process?.send({ type: "cancel", turn });
      },
      kill: () => {
        this.journal.log("error", "platform", `turn ${turn} did not end after cancel; killing the agent process`);
        this.killReason = `turn exceeded the maximum duration of ${maxTurnMs} ms`;
        this.process?.kill("SIGKILL");
      },
    });
    this.current = { ...next, ended: false, timer };
    this.status = "busy";
    this.process?.send({ type: "message", turn: next.turn, content: next.content, ...next.trace?.started(turn, this.deploymentId) });
  }

  /**
   * turn_done: the workspace is captured, then the turn's end is recorded and the next one starts. A capture that
   * needs no wait (nothing changed, or a synchronous one) and the turn's end are appended to `run`, to be recorded
   * with the turn's last events; the turn is returned for turnRecorded(). Otherwise the capture's change-tracking
   * barrier is awaited, not blocked on, so the events in `run` reach their clients meanwhile; an exit in between
   * ends the turn synchronously (onExit).
   */
  private finishTurn(turn: number, error: string | undefined, run: EventRecord[]): RunningTurn | undefined {
    const current = this.current;
    if (!current || current.turn !== turn || current.done) {
      this.journal.log("warn", "platform", `turn_done for turn ${turn}, which is not running`);
      return undefined;
    }
    current.timer.clear();
    current.done = { error };
    const capture = this.body?.workspaceCapture;
    let outcome: CaptureOutcome | Promise<CaptureOutcome>;
    try {
      outcome = capture && this.writable() ? (capture.captureSoon ? capture.captureSoon() : capture.capture()) : undefined;
    } catch (err) {
      this.journal.log("error", "platform", `workspace capture failed: ${errorMessage(err)}`);
      outcome = undefined;
    }
    if (outcome instanceof Promise) {
      void this.captureThenEnd(current, outcome);
      return undefined;
    }
    run.push(...captureRecords(outcome, turn), ...this.turnEnd(current));
    return current;
  }

  private async captureThenEnd(current: RunningTurn, capture: Promise<CaptureOutcome>): Promise<void> {
    const changes = await this.journal.captureEvents(capture, current.turn, () => this.current === current);
    try {
      if (this.current === current) this.endTurn(current, true, changes);
    } catch (err) {
      this.options.logger.error("could not record the end of a turn", { instance_id: this.instanceId, agent_id: this.agentId, turn: current.turn, error: errorMessage(err) });
    }
  }

  /** The events that end a turn whose turn_done arrived (instance-journal.ts, turnEnded). */
  private turnEnd(current: RunningTurn): EventRecord[] {
    return turnEnded(current.turn, { error: current.done?.error, interrupted: current.interrupted, ended: current.ended });
  }

  /** Records the end of a turn whose turn_done arrived, after `events` (what its capture found), in one transaction; starts the next. */
  private endTurn(current: RunningTurn, next = true, events: EventRecord[] = []): void {
    this.journal.emitMany([...events, ...this.turnEnd(current)]);
    this.turnRecorded(current, next);
  }

  /** The turn's end was recorded: its trace ends, and the next turn starts (`next`). */
  private turnRecorded(current: RunningTurn, next = true): void {
    current.trace?.ended(current.done?.error ?? current.interrupted);
    this.body?.store.checkpointSoon();
    this.current = undefined;
    if (this.status === "busy") this.status = "ready";
    if (next) this.pump();
  }

  /** What the process's last writes changed in the workspace, captured now: recorded before its exit's events. */
  private finalCapture(turn: number): EventRecord[] {
    const capture = this.body?.workspaceCapture;
    return capture ? this.journal.captureNow(() => capture.capture(), turn) : [];
  }

  private onExit(info: ProcessExitInfo): void {
    if (this.sleeping) return this.onHibernated(info);
    const crashed = !this.stopRequested;
    this.killReason ??= this.body?.exitReason?.();
    const reason = this.killReason ?? (crashed ? (this.readyAt ? "crashed" : "failed to start") : "stopped");
    this.exit = { code: info.code, signal: info.signal, reason };
    const current = this.current; // endTurn clears this.current
    const changes = this.finalCapture(current?.turn ?? 0);
    if (current) {
      current.timer.clear();
      if (current.done)
        this.endTurn(current, false, changes); // it had ended (its trace with it); its capture was under way
      else this.journal.emitMany([...changes, ...turnFailed(current.turn, { message: this.killReason ?? `agent process exited during turn ${current.turn}` })]);
      if (!current.done) current.trace?.ended(this.killReason ?? "the agent process exited during the turn");
    } else {
      this.journal.emitMany(changes);
    }
    endQueuedTurns(this.queue.splice(0), this.serving, this.journal);
    this.current = undefined;
    this.status = crashed ? "failed" : "terminated";
    this.endedAt = Date.now();
    const content: JsonObject = { reason, exit_code: info.code, signal: info.signal };
    this.journal.emit(PlatformEvent.terminated, content, 0);
    this.journal.log(crashed ? "error" : "info", "platform", `instance ${this.instanceId} ${reason} (exit code ${info.code}, signal ${info.signal})`);
    this.starting?.exited(info);
    this.journal.endSubscribers();
    this.settleGone("ended");
    this.markEnded();
  }

  /** The process hibernate() asked to end has ended: what onHibernate wrote is captured, then `hibernated`. */
  private onHibernated(info: ProcessExitInfo): void {
    this.sleeping = false;
    this.serving = false;
    const idleMs = this.idleSince === undefined ? 0 : (this.hibernatedAt ?? Date.now()) - this.idleSince;
    const hibernated = { messageType: PlatformEvent.hibernated, content: { idle_ms: idleMs, exit_code: info.code, signal: info.signal }, turn: 0 };
    this.journal.emitMany([...this.finalCapture(0), hibernated]); // what onHibernate wrote, then `hibernated`
    this.journal.log("info", "platform", `instance ${this.instanceId} hibernated after ${idleMs} ms idle`);
    this.idleSince = undefined;
    this.process = undefined;
    this.starting = undefined;
    this.body = undefined;
    this.journal.store = undefined;
    this.settleGone("hibernated");
    if (this.fencedReason !== undefined) this.endAsleep(this.fencedReason); // fenced as it fell asleep
  }

  /** Ends a hibernated instance: there is no process, and nothing is recorded (its databases are closed). */
  private endAsleep(reason: string): void {
    this.status = "terminated";
    this.endedAt = Date.now();
    this.exit = { code: null, signal: null, reason };
    this.journal.emit(PlatformEvent.terminated, { reason, exit_code: null, signal: null }, 0);
    this.journal.log("info", "platform", `instance ${this.instanceId} ${reason} while hibernated`);
    this.journal.endSubscribers();
    this.markEnded();
  }
}
