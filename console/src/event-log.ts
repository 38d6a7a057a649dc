/**
 * What the instance page keeps of an instance's `/connect` stream: every event in arrival order, the
 * reply text of each turn, and the requests (permission, question) still waiting for an answer. It is
 * updated in place, event by event (10,000 events cost 10,000 small appends, not 10,000 renders).
 */
import type { JsonObject, StreamEvent } from "./api-types.js";
import { PlatformEvent } from "../../services/shared/platform-events.js";

export interface TurnView {
  turn: number;
  /** What this page sent, when the turn is one of its messages. */
  sent: string | undefined;
  /** The trace id the page sent the message with (turn-traces.ts), when it did. */
  traceId?: string;
  reply: string;
  done: boolean;
  ok: boolean | undefined;
  error: string | undefined;
}

export interface PendingRequest {
  requestId: string;
  kind: "permission" | "question";
  turn: number | undefined;
  content: JsonObject;
}

export class EventLog {
  readonly events: StreamEvent[] = [];
  readonly turns = new Map<number, TurnView>();
  readonly pending = new Map<string, PendingRequest>();
  lastSeq = 0;
  stateDeltas = 0;
  workspaceChanges = 0;
  terminated: string | undefined;
  private readonly unsent: { text: string; traceId: string | undefined }[] = [];

  /** Remembers a message this page sent (and its trace id); the next new turn is shown with it. */
  noteSent(text: string, traceId?: string): void {
    this.unsent.push({ text, traceId });
  }

  /** The inbound message of a turn this page did not send (read back from the messages API). */
  setSent(turn: number, text: string): void {
    const view = this.turns.get(turn);
    if (view && view.sent === undefined) view.sent = text;
  }

  append(event: StreamEvent): void {
    if (event.seq <= this.lastSeq && event.messageType !== PlatformEvent.terminated) return; // a replayed duplicate
    this.events.push(event);
    this.lastSeq = Math.max(this.lastSeq, event.seq);
    const content = event.content ?? {};
    const requestId = typeof content.request_id === "string" ? content.request_id : undefined;
    switch (event.messageType) {
      case PlatformEvent.stateDelta:
        this.stateDeltas++;
        break;
      case PlatformEvent.workspaceChanged:
        this.workspaceChanges++;
        break;
      case PlatformEvent.terminated:
        this.terminated = typeof content.reason === "string" ? content.reason : "ended";
        break;
      case "tool.permission_requested":
      case "tool.question_requested":
        if (requestId) {
          const kind = event.messageType === "tool.permission_requested" ? "permission" : "question";
          this.pending.set(requestId, { requestId, kind, turn: event.turn, content });
        }
        break;
      case PlatformEvent.requestResolved:
        if (requestId) this.pending.delete(requestId);
        break;
      default:
        break;
    }
    if (event.turn === undefined) return;
    const turn = this.turnOf(event.turn);
    if ((event.messageType === "stream_update" || event.messageType === "update") && typeof content.text === "string") turn.reply += content.text;
    if (event.messageType === PlatformEvent.error) turn.error = typeof content.message === "string" ? content.message : "error";
    if (event.messageType === PlatformEvent.turnDone) {
      turn.done = true;
      turn.ok = content.ok !== false;
      for (const [id, request] of this.pending) if (request.turn === event.turn) this.pending.delete(id);
    }
  }

  private turnOf(id: number): TurnView {
    let turn = this.turns.get(id);
    if (!turn) {
      const sent = this.unsent.shift();
      turn = { turn: id, sent: sent?.text, reply: "", done: false, ok: undefined, error: undefined, ...(sent?.traceId ? { traceId: sent.traceId } : {}) };
      this.turns.set(id, turn);
    }
    return turn;
  }
}
