/**
 * Stamps client event drafts with their session envelope: a per-session seq (gap-free, from 1, or
 * from `lastSeq + 1` when a session resumes) and an RFC 3339 timestamp. One sequencer per session.
 */
import type { ClientEvent, ClientEventDraft } from "./client-event.js";

export interface SessionSequencerOptions {
  sessionId: string;
  /** Default instance for `next()`; a session may move to a new instance when it is reactivated. */
  instanceId?: string;
  /** The last seq the session already delivered; 0 (the default) starts at 1. */
  lastSeq?: number;
  /** Clock for events that carry no timestamp of their own. Default Date.now. */
  now?: () => number;
}

export interface StampOptions {
  /** The producing instance; defaults to the sequencer's instanceId. */
  instanceId?: string;
  /** When the source update happened (ms since the epoch or a Date); defaults to the clock. */
  timestamp?: number | Date;
}

export class SessionSequencer {
  readonly sessionId: string;
  private readonly instanceId: string;
  private readonly now: () => number;
  private seq: number;

  constructor(options: SessionSequencerOptions) {
    const lastSeq = options.lastSeq ?? 0;
    if (!Number.isSafeInteger(lastSeq) || lastSeq < 0) throw new RangeError(`lastSeq must be a non-negative integer, got ${lastSeq}`);
    this.sessionId = options.sessionId;
    this.instanceId = options.instanceId ?? "";
    this.now = options.now ?? Date.now;
    this.seq = lastSeq;
  }

  /** The seq of the last event stamped (0 before the first). */
  get lastSeq(): number {
    return this.seq;
  }

  /** Stamps drafts in order with consecutive seqs. All events of one call share one timestamp. */
  next(drafts: readonly ClientEventDraft[], options: StampOptions = {}): ClientEvent[] {
    if (drafts.length === 0) return [];
    const at = options.timestamp ?? this.now();
    const timestamp = (at instanceof Date ? at : new Date(at)).toISOString();
    const instanceId = options.instanceId ?? this.instanceId;
    return drafts.map((draft) => {
      this.seq += 1;
      const envelope = { type: draft.type, seq: this.seq, timestamp, sessionId: this.sessionId, instanceId };
      return draft.agentId ? { ...envelope, agentId: draft.agentId, data: draft.data } : { ...envelope, data: draft.data };
    });
  }
}
