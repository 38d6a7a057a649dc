/**
 * Makes a restored agent consistent again. Litestream replicates each database on its own, so after a
 * host death the four come back cut at different points (measured: messages up to ~1 s behind state).
 * messages.db is the ledger: every turn records the state version it produced (`state.delta`) and the
 * workspace iteration it captured (`workspace.changed`), and ends with `turn.done`. After a restore:
 *
 * 1. messages are cut back to the last turn end whose state versions and workspace iterations the
 *    restored state.db and chronicle.db actually hold (a turn is kept whole or not at all). Acknowledged
 *    messages (inbound `process_message`) are kept: the delivery promise (docs/runtime.md) holds for
 *    every one that reached the replica;
 * 2. state.db is rolled back to the version the kept ledger ends with, when it got further (possible
 *    while that version is newer than its newest snapshot; otherwise it stays ahead, reported), and
 *    chronicle.db to the iteration the kept ledger ends with (its manifest rebuilt from the versions;
 *    not when a file restore made a later iteration, which the ledger does not record: reported);
 * 3. after an unclean loss (`seqGap` > 0), a platform event `agent.restored` is recorded `seqGap` seqs
 *    after the last kept one, so events a client saw from the lost host (seqs that were never
 *    replicated) are never reused for different events of the resumed agent;
 * 4. unfinished turns are settled the way a coordinator's restart does (unfinished-turns.ts): a turn whose
 *    events were cut had begun, so it gets `error` ("interrupted") + `turn.done` (ok: false) and is not
 *    run again; messages whose turn never began stay queued and run when the agent next starts
 *    (`unfinished: "resume"`), or, in a point-in-time copy (`"close"`), all get `error` ("not run").
 *
 * Run it before the workspace is written from chronicle.db. logs.db is left as it is.
 */
import fs from "node:fs";
import path from "node:path";
import { openChronicleDb } from "../coordinator/chronicle/chronicle-db.js";
import { VersionLog } from "../coordinator/chronicle/version-log.js";
import { AgentStore, MESSAGES_DB } from "../coordinator/store/agent-store.js";
import type { NewMessage } from "../coordinator/store/message-log.js";
import { findUnfinishedTurns } from "../coordinator/unfinished-turns.js";
import type { JsonObject } from "../shared/json.js";
import { PlatformEvent } from "../shared/platform-events.js";

export interface ReconcileResult {
  /** Last seq kept in messages.db (0: empty), before the rows this reconciliation added. */
  lastSeq: number;
  /** Events removed because a later database did not have their turn's writes (acknowledged messages stay). */
  droppedMessages: number;
  /** Turns given `error` + `turn.done` (ok: false) here: begun and cut, or, with "close", every unfinished one. */
  interruptedTurns: number[];
  /** Acknowledged messages left unfinished to run when the agent next starts ("resume"). */
  queuedTurns: number[];
  /** State version after reconciling. */
  stateVersion: number;
  /** Patches removed from state.db (it was ahead of the ledger). */
  droppedPatches: number;
  /** state.db is still ahead of the ledger (it snapshotted past the cut). */
  stateAhead: boolean;
  /** Workspace iterations removed from chronicle.db (it was ahead of the ledger). */
  droppedIterations: number;
  /** chronicle.db is still ahead of the ledger (a file restore made a later iteration). */
  workspaceAhead: boolean;
  /** Seq of the `agent.restored` event (0: none written). */
  restoredEventSeq: number;
}

export interface ReconcileOptions {
  /** Seqs skipped before the `agent.restored` event; 0 writes no event (a clean restore, a fork). */
  seqGap: number;
  /** Why the agent was restored (the event's `reason`). */
  reason?: string;
  /**
   * Acknowledged messages whose turn never began: "resume" (default; the agent itself, resumed) leaves them
   * queued for its next start; "close" (a point-in-time copy) ends each with an error, since the original
   * agent answered them.
   */
  unfinished?: "resume" | "close";
}

const INTERRUPTED = "interrupted: the coordinator was lost during this turn; its events were not all replicated, so it is not run again";
const NOT_RUN_IN_COPY = "not run: this agent is a point-in-time copy, made while this message was pending in the original agent";

/** A gap no sync window can fill: Podium persists ~30k events/s per agent, the window is seconds. */
export const UNCLEAN_RESTORE_SEQ_GAP = 1_000_000;

/** A number field of an event's content. */
function field(content: JsonObject | undefined, name: string): number | undefined {
  const value = content?.[name];
  return typeof value === "number" ? value : undefined;
}

export function reconcileRestoredAgent(agentDir: string, options: ReconcileOptions): ReconcileResult {
  const result: ReconcileResult = {
    lastSeq: 0,
    droppedMessages: 0,
    interruptedTurns: [],
    queuedTurns: [],
    stateVersion: 0,
    droppedPatches: 0,
    stateAhead: false,
    droppedIterations: 0,
    workspaceAhead: false,
    restoredEventSeq: 0,
  };
  if (!fs.existsSync(path.join(agentDir, MESSAGES_DB))) return result;
  const chroniclePath = path.join(agentDir, "chronicle.db");
  const store = AgentStore.open({ dir: agentDir });
  const chronicle = fs.existsSync(chroniclePath) ? openChronicleDb(chroniclePath) : undefined;
  try {
    const ledger = store.messages.ledger();
    const versions = chronicle && new VersionLog(chronicle);
    const stateMax = store.state.storedVersion();
    const iterationMax = versions?.latestIteration() ?? 0;
    // The ledger's writes the other databases lack: the first state version / iteration beyond theirs.
    let firstMissing: number | undefined;
    for (const row of ledger.outbound([PlatformEvent.stateDelta, PlatformEvent.workspaceChanged])) {
      const missing = row.messageType === PlatformEvent.stateDelta ? (field(row.content, "version") ?? 0) > stateMax : (field(row.content, "iteration") ?? 0) > iterationMax;
      if (missing) {
        firstMissing = row.seq;
        break;
      }
    }
    const cut = ledger.transaction(() => {
      let firstUnwhole = firstMissing;
      if (firstUnwhole === undefined) {
        // Nothing missing, but the ledger may end inside a turn (the host died mid-turn): that turn goes too.
        const open = ledger.firstTurnEventAfter(ledger.lastTurnEnd());
        if (open > 0) firstUnwhole = open;
      }
      let cutTurns: number[] = [];
      if (firstUnwhole !== undefined) {
        // Keep whole turns: cut back to the last turn end before the first write that is not whole.
        const keepThrough = ledger.lastTurnEnd(firstUnwhole);
        cutTurns = ledger.turnsAfter(keepThrough);
        result.droppedMessages = ledger.cutAfter(keepThrough);
      }
      result.lastSeq = store.messages.lastSeq();
      return {
        version: field(ledger.newest(PlatformEvent.stateDelta)?.content, "version"),
        iteration: field(ledger.newest(PlatformEvent.workspaceChanged)?.content, "iteration"),
        cutTurns,
      };
    });
    // Only to a version the ledger names: a ledger without state.delta events says nothing about state.
    if (cut.version !== undefined && stateMax > cut.version && cut.version >= store.state.newestSnapshotVersion()) {
      result.droppedPatches = store.state.dropPatchesAfter(cut.version);
    }
    result.stateVersion = store.state.storedVersion();
    result.stateAhead = cut.version !== undefined && result.stateVersion > cut.version;
    // The same for the workspace: only to an iteration the ledger names, and only over captures.
    if (versions && cut.iteration !== undefined && iterationMax > cut.iteration) {
      if (versions.restoresAfter(cut.iteration) === 0) result.droppedIterations = versions.truncateAfter(cut.iteration);
      else result.workspaceAhead = true;
    }
    // Settle unfinished turns (before the marker is written, so the marker can say what happened to them).
    const unfinished = findUnfinishedTurns(store.messages);
    const open = [...unfinished.begun, ...unfinished.waiting].map((t) => t.turn).sort((a, b) => a - b);
    const interrupted = options.unfinished === "close" ? open : open.filter((turn) => cut.cutTurns.includes(turn) || unfinished.begun.some((t) => t.turn === turn));
    result.interruptedTurns = interrupted;
    result.queuedTurns = open.filter((turn) => !interrupted.includes(turn));
    ledger.transaction(() => {
      if (options.seqGap > 0) {
        const seq = result.lastSeq + options.seqGap;
        ledger.appendAt(
          seq,
          PlatformEvent.agentRestored,
          {
            reason: options.reason ?? "restored from S3 after its coordinator was lost",
            last_replicated_seq: result.lastSeq,
            dropped_messages: result.droppedMessages,
            state_version: result.stateVersion,
            interrupted_turns: result.interruptedTurns,
            queued_turns: result.queuedTurns,
          },
          Date.now(),
        );
        result.restoredEventSeq = seq;
      }
      if (interrupted.length === 0) return;
      // Their seqs continue after the marker.
      const message = options.unfinished === "close" ? NOT_RUN_IN_COPY : INTERRUPTED;
      const timestamp = Date.now();
      const event = (turn: number, messageType: string, content: JsonObject): NewMessage => ({ direction: "outbound", instanceId: "", turn, messageType, content, timestamp });
      store.messages.appendMany(interrupted.flatMap((turn) => [event(turn, PlatformEvent.error, { message, code: "aborted", turn }), event(turn, PlatformEvent.turnDone, { turn, ok: false })]));
    });
    return result;
  } finally {
    chronicle?.close();
    store.close();
  }
}
