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
import Database from "better-sqlite3";
import { MessageLog, type NewMessage } from "../coordinator/store/message-log.js";
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

interface LedgerRow {
  seq: number;
  message_type: string;
  content: string | null;
}

function scalar(db: Database.Database, sql: string, ...params: number[]): number {
  const value = db.prepare(sql).pluck().get(...params) as number | null | undefined;
  return value ?? 0;
}

function field(content: string | null, name: string): number | undefined {
  if (content === null) return undefined;
  try {
    const value = (JSON.parse(content) as Record<string, unknown>)[name];
    return typeof value === "number" ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * chronicle.db as of `iteration`: later versions and iterations removed, the manifest (the workspace's
 * current files) rebuilt from the newest version of each path. Its stat fields are placeholders marked
 * racy, so the next capture re-hashes rather than trusts them; materializing the workspace rewrites them.
 * Blobs only later versions used stay (unreferenced), as they do after any restore.
 */
function rollBackChronicle(db: Database.Database, iteration: number): number {
  return db.transaction(() => {
    db.prepare("DELETE FROM versions WHERE iteration > ?").run(iteration);
    const dropped = db.prepare("DELETE FROM iterations WHERE iteration > ?").run(iteration).changes;
    db.prepare("DELETE FROM manifest").run();
    db.prepare(
      `INSERT INTO manifest (path, size, mtime_ms, ctime_ms, ino, blob_id, iteration, racy)
       SELECT v.path, v.size, v.mtime_ms, 0, 0, v.blob_id, v.iteration, 1
       FROM versions v JOIN (SELECT path, max(iteration) AS newest FROM versions GROUP BY path) n
         ON v.path = n.path AND v.iteration = n.newest
       WHERE v.change <> 'deleted'`,
    ).run();
    return dropped;
  })();
}

export function reconcileRestoredAgent(agentDir: string, options: ReconcileOptions): ReconcileResult {
  const messagesPath = path.join(agentDir, "messages.db");
  const statePath = path.join(agentDir, "state.db");
  const chroniclePath = path.join(agentDir, "chronicle.db");
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
  if (!fs.existsSync(messagesPath)) return result;
  const messages = new Database(messagesPath);
  const state = fs.existsSync(statePath) ? new Database(statePath) : undefined;
  const chronicle = fs.existsSync(chroniclePath) ? new Database(chroniclePath) : undefined;
  try {
    const stateMax = state ? Math.max(scalar(state, "SELECT max(version) FROM patches"), scalar(state, "SELECT max(version) FROM snapshots")) : 0;
    const iterationMax = chronicle ? scalar(chronicle, "SELECT max(iteration) FROM iterations") : 0;
    // The ledger's writes the other databases lack: the first state version / iteration beyond theirs.
    const rows = messages
      .prepare("SELECT seq, message_type, content FROM messages WHERE direction = 'outbound' AND message_type IN ('state.delta', 'workspace.changed') ORDER BY seq")
      .iterate() as IterableIterator<LedgerRow>;
    let firstMissing: number | undefined;
    for (const row of rows) {
      const missing = row.message_type === PlatformEvent.stateDelta ? (field(row.content, "version") ?? 0) > stateMax : (field(row.content, "iteration") ?? 0) > iterationMax;
      if (missing) {
        firstMissing = row.seq;
        break;
      }
    }
    const cut = messages.transaction(() => {
      // A turn ends with turn.done, or with the instance's end (a turn cut by a crash records error + terminated).
      const ends = "message_type IN ('turn.done', 'terminated')";
      let firstUnwhole = firstMissing;
      if (firstUnwhole === undefined) {
        // Nothing missing, but the ledger may end inside a turn (the host died mid-turn): that turn goes too.
        const lastEnd = scalar(messages, `SELECT max(seq) FROM messages WHERE ${ends}`);
        const open = scalar(messages, "SELECT min(seq) FROM messages WHERE seq > ? AND direction = 'outbound' AND turn > 0", lastEnd);
        if (open > 0) firstUnwhole = open;
      }
      let cutTurns: number[] = [];
      if (firstUnwhole !== undefined) {
        // Keep whole turns: cut back to the last turn end before the first write that is not whole.
        const keepThrough = scalar(messages, `SELECT max(seq) FROM messages WHERE ${ends} AND seq < ?`, firstUnwhole);
        cutTurns = messages
          .prepare("SELECT DISTINCT turn FROM messages WHERE seq > ? AND direction = 'outbound' AND turn > 0 ORDER BY turn")
          .pluck()
          .all(keepThrough) as number[];
        result.droppedMessages = messages
          .prepare("DELETE FROM messages WHERE seq > ? AND NOT (direction = 'inbound' AND message_type = 'process_message')")
          .run(keepThrough).changes;
      }
      result.lastSeq = scalar(messages, "SELECT max(seq) FROM messages");
      const last = (type: string): string | null =>
        (messages.prepare("SELECT content FROM messages WHERE message_type = ? ORDER BY seq DESC LIMIT 1").pluck().get(type) as string | null | undefined) ?? null;
      return { version: field(last(PlatformEvent.stateDelta), "version"), iteration: field(last(PlatformEvent.workspaceChanged), "iteration"), cutTurns };
    })();
    if (state) {
      const newestSnapshot = scalar(state, "SELECT max(version) FROM snapshots");
      // Only to a version the ledger names: a ledger without state.delta events says nothing about state.
      if (cut.version !== undefined && stateMax > cut.version && cut.version >= newestSnapshot) {
        result.droppedPatches = state.prepare("DELETE FROM patches WHERE version > ?").run(cut.version).changes;
      }
      result.stateVersion = Math.max(scalar(state, "SELECT max(version) FROM patches"), scalar(state, "SELECT max(version) FROM snapshots"));
      result.stateAhead = cut.version !== undefined && result.stateVersion > cut.version;
    }
    // The same for the workspace: only to an iteration the ledger names, and only over captures.
    if (chronicle && cut.iteration !== undefined && iterationMax > cut.iteration) {
      const laterRestores = scalar(chronicle, "SELECT count(*) FROM iterations WHERE iteration > ? AND kind <> 'capture'", cut.iteration);
      if (laterRestores === 0) result.droppedIterations = rollBackChronicle(chronicle, cut.iteration);
      else result.workspaceAhead = true;
    }
    // Settle unfinished turns (before the marker is written, so the marker can say what happened to them).
    const unfinished = findUnfinishedTurns(new MessageLog(messages));
    const open = [...unfinished.begun, ...unfinished.waiting].map((t) => t.turn).sort((a, b) => a - b);
    const interrupted = options.unfinished === "close" ? open : open.filter((turn) => cut.cutTurns.includes(turn) || unfinished.begun.some((t) => t.turn === turn));
    result.interruptedTurns = interrupted;
    result.queuedTurns = open.filter((turn) => !interrupted.includes(turn));
    messages.transaction(() => {
      if (options.seqGap > 0) {
        const seq = result.lastSeq + options.seqGap;
        messages
          .prepare("INSERT INTO messages (seq, direction, instance_id, turn, message_type, content, timestamp) VALUES (?, 'outbound', '', 0, ?, ?, ?)")
          .run(
            seq,
            PlatformEvent.agentRestored,
            JSON.stringify({
              reason: options.reason ?? "restored from S3 after its coordinator was lost",
              last_replicated_seq: result.lastSeq,
              dropped_messages: result.droppedMessages,
              state_version: result.stateVersion,
              interrupted_turns: result.interruptedTurns,
              queued_turns: result.queuedTurns,
            }),
            Date.now(),
          );
        result.restoredEventSeq = seq;
      }
      if (interrupted.length === 0) return;
      // A MessageLog opened after the marker: its seqs continue after it.
      const message = options.unfinished === "close" ? NOT_RUN_IN_COPY : INTERRUPTED;
      const timestamp = Date.now();
      const event = (turn: number, messageType: string, content: JsonObject): NewMessage => ({ direction: "outbound", instanceId: "", turn, messageType, content, timestamp });
      new MessageLog(messages).appendMany(interrupted.flatMap((turn) => [event(turn, PlatformEvent.error, { message, code: "aborted", turn }), event(turn, PlatformEvent.turnDone, { turn, ok: false })]));
    })();
    return result;
  } finally {
    chronicle?.close();
    state?.close();
    messages.close();
  }
}
