/**
 * reconcileRestoredAgent on agent directories written through the real stores (AgentStore + Chronicle),
 * recorded the way AgentInstance records turns, then cut the way a host death leaves a Litestream
 * restore: each database replicated on its own, so each ends at a different point.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { describe, it, expect, beforeEach, afterEach } from "@jest/globals";
import { AgentStore } from "../../services/coordinator/store/agent-store.js";
import type { MessageRow } from "../../services/coordinator/store/message-log.js";
import { Chronicle } from "../../services/coordinator/chronicle/chronicle.js";
import type { JsonObject, JsonPatchOp } from "../../services/shared/json.js";
import { reconcileRestoredAgent, UNCLEAN_RESTORE_SEQ_GAP } from "../../services/replication/restore-reconcile.js";
import { findUnfinishedTurns } from "../../services/coordinator/unfinished-turns.js";

const INSTANCE = "inst_reconcile";

/** What one recorded turn left in the three databases. */
interface RecordedTurn {
  /** 1-based turn number (the note "t<n>" it adds). */
  n: number;
  /** Turn id: the seq of its inbound process_message. */
  turn: number;
  /** Seqs of its rows: process_message, state.delta, workspace.changed, complete, turn.done. */
  seqs: { inbound: number; delta: number; workspace: number; complete: number; done: number };
  /** State version its patch produced. */
  version: number;
  /** Workspace iteration its capture produced. */
  iteration: number;
}

interface RecordedAgent {
  dir: string;
  /** Seq of the turn-0 state.delta that created `{ notes: [] }` (state version 1). */
  initSeq: number;
  turns: RecordedTurn[];
}

interface BuildOptions {
  /** Call state.snapshot() right after this turn (0: after the init patch). */
  snapshotAfterTurn?: number;
}

function turnAt(agent: RecordedAgent, n: number): RecordedTurn {
  const turn = agent.turns[n - 1];
  if (!turn) throw new Error(`no turn ${n}`);
  return turn;
}

/**
 * Records `turns` turns through the real stores, the way the coordinator does (agent-instance.ts):
 * per turn an inbound `process_message` (turn 0; its seq names the turn), then outbound with that
 * turn id: `state.delta` after the state patch, `workspace.changed` after a file write + capture,
 * `complete`, `turn.done`. Closes every store before returning.
 */
function recordAgent(dir: string, turns: number, options: BuildOptions = {}): RecordedAgent {
  const workspace = path.join(dir, "workspace");
  fs.mkdirSync(workspace, { recursive: true });
  const store = AgentStore.open({ dir });
  try {
    const chronicle = Chronicle.open({ workspaceDir: workspace, dbPath: path.join(dir, "chronicle.db"), watch: false });
    try {
      const outbound = (turn: number, messageType: string, content: JsonObject): MessageRow =>
        store.messages.append({ direction: "outbound", instanceId: INSTANCE, turn, messageType, content, timestamp: Date.now() });
      const applyState = (ops: JsonPatchOp[], turn: number): MessageRow => {
        const row = store.state.apply(ops, { instanceId: INSTANCE, turn });
        return outbound(turn, "state.delta", { version: row.version, patch: ops });
      };

      const init = applyState([{ op: "add", path: "/notes", value: [] }], 0);
      if (options.snapshotAfterTurn === 0) store.state.snapshot();
      const recorded: RecordedTurn[] = [];
      for (let n = 1; n <= turns; n++) {
        const inbound = store.messages.append({ direction: "inbound", instanceId: INSTANCE, turn: 0, messageType: "process_message", content: { text: `t${n}` }, timestamp: Date.now() });
        const turn = inbound.seq;
        const delta = applyState([{ op: "add", path: "/notes/-", value: `t${n}` }], turn);
        fs.mkdirSync(path.join(workspace, "notes"), { recursive: true });
        fs.writeFileSync(path.join(workspace, "notes", `${n}.txt`), `note ${n}\n`);
        const capture = chronicle.capture();
        if (!capture) throw new Error(`turn ${n}: capture found no change`);
        const files: JsonObject[] = capture.files.map((f) => ({ path: f.path, change: f.change }));
        const workspaceChanged = outbound(turn, "workspace.changed", { iteration: capture.iteration, files });
        const complete = outbound(turn, "complete", {});
        const done = outbound(turn, "turn.done", { turn, ok: true });
        recorded.push({
          n,
          turn,
          seqs: { inbound: inbound.seq, delta: delta.seq, workspace: workspaceChanged.seq, complete: complete.seq, done: done.seq },
          version: (delta.content?.version as number | undefined) ?? -1,
          iteration: capture.iteration,
        });
        if (options.snapshotAfterTurn === n) store.state.snapshot();
      }
      return { dir, initSeq: init.seq, turns: recorded };
    } finally {
      chronicle.close();
    }
  } finally {
    store.close();
  }
}

/** Runs `sql` on one of the agent's databases (stores closed), returns the changed row count. */
function cut(dir: string, db: "messages.db" | "state.db" | "chronicle.db", sql: string, ...params: number[]): number {
  const handle = new Database(path.join(dir, db));
  try {
    return handle.prepare(sql).run(...params).changes;
  } finally {
    handle.close();
  }
}

/** messages.db replicated only through `seq`. */
function cutMessagesAfter(dir: string, seq: number): number {
  return cut(dir, "messages.db", "DELETE FROM messages WHERE seq > ?", seq);
}

/** state.db replicated only through `version`. */
function cutPatchesAfter(dir: string, version: number): number {
  return cut(dir, "state.db", "DELETE FROM patches WHERE version > ?", version);
}

/** chronicle.db replicated only through `iteration` (the iteration rows and their file versions). */
function cutIterationsAfter(dir: string, iteration: number): void {
  const handle = new Database(path.join(dir, "chronicle.db"));
  try {
    handle.transaction(() => {
      handle.prepare("DELETE FROM versions WHERE iteration > ?").run(iteration);
      handle.prepare("DELETE FROM iterations WHERE iteration > ?").run(iteration);
    })();
  } finally {
    handle.close();
  }
}

function scalarOf(dir: string, db: "state.db" | "chronicle.db", sql: string): number {
  const handle = new Database(path.join(dir, db), { readonly: true });
  try {
    return (handle.prepare(sql).pluck().get() as number | null) ?? 0;
  } finally {
    handle.close();
  }
}

interface ReadBack {
  messages: MessageRow[];
  seqs: number[];
  types: string[];
  version: number;
  notes: unknown;
}

/** The directory as the coordinator sees it after reopening. */
function readBack(dir: string): ReadBack {
  const store = AgentStore.open({ dir });
  try {
    const messages = store.messages.list(0, 100_000);
    const { version, state } = store.state.current();
    const copy = JSON.parse(JSON.stringify(state)) as Record<string, unknown>;
    return { messages, seqs: messages.map((m) => m.seq), types: messages.map((m) => m.messageType), version, notes: copy.notes };
  } finally {
    store.close();
  }
}

/** Seqs of the init delta and the first `n` whole turns. */
function readBackSeqsThrough(agent: RecordedAgent, n: number): number[] {
  return [agent.initSeq, ...agent.turns.slice(0, n).flatMap((t) => [t.seqs.inbound, t.seqs.delta, t.seqs.workspace, t.seqs.complete, t.seqs.done])];
}

function notesThrough(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `t${i + 1}`);
}

/** Message types of the init delta followed by `n` whole turns. */
function typesThrough(n: number): string[] {
  const turn = ["process_message", "state.delta", "workspace.changed", "complete", "turn.done"];
  return ["state.delta", ...Array.from({ length: n }, () => turn).flat()];
}

const ROWS_PER_TURN = 5;
/** A cut turn keeps its acknowledged message (the delivery promise); its other rows go. */
const EVENTS_PER_TURN = ROWS_PER_TURN - 1;

/**
 * Message types after a cut of whole turns that had begun: `kept` whole turns, the cut turns' messages (with
 * `between` after them), then `error` + `turn.done` for each cut turn.
 */
function typesAfterCut(kept: number, cutTurns: number, between: string[] = []): string[] {
  return [...typesThrough(kept), ...Array.from({ length: cutTurns }, () => "process_message"), ...between, ...Array.from({ length: cutTurns }, () => ["error", "turn.done"]).flat()];
}

/** The cut turns end as interrupted, in order: `error` then `turn.done` (ok: false), recorded by the platform. */
function expectInterrupted(back: ReadBack, turns: RecordedTurn[]): void {
  const settled = back.messages.filter((m) => m.instanceId === "" && (m.messageType === "error" || m.messageType === "turn.done"));
  expect(settled.map((m) => [m.messageType, m.turn])).toEqual(turns.flatMap((t) => [["error", t.turn], ["turn.done", t.turn]]));
  expect(settled.filter((m) => m.messageType === "turn.done").map((m) => m.content)).toEqual(turns.map((t) => ({ turn: t.turn, ok: false })));
  for (const error of settled.filter((m) => m.messageType === "error")) expect(String(error.content?.message)).toMatch(/^interrupted: /);
}

describe("reconcileRestoredAgent", () => {
  let root: string;
  let dir: string;
  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "podium-reconcile-"));
    dir = path.join(root, "agents", "agent-1");
  });
  afterEach(() => {
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("records turns the way the coordinator does (fixture sanity)", () => {
    const agent = recordAgent(dir, 3);
    expect(agent.initSeq).toBe(1);
    expect(agent.turns.map((t) => [t.turn, t.version, t.iteration])).toEqual([
      [2, 2, 1],
      [7, 3, 2],
      [12, 4, 3],
    ]);
    const back = readBack(dir);
    expect(back.types).toEqual(typesThrough(3));
    expect(back.notes).toEqual(notesThrough(3));
    expect(back.messages.filter((m) => m.direction === "outbound" && m.turn > 0).every((m) => agent.turns.some((t) => t.turn === m.turn))).toBe(true);
  });

  it("drops nothing when every database has every turn", () => {
    const agent = recordAgent(dir, 4);
    const before = readBack(dir);
    const result = reconcileRestoredAgent(dir, { seqGap: 0 });
    expect(result).toMatchObject({
      lastSeq: turnAt(agent, 4).seqs.done,
      droppedMessages: 0,
      stateVersion: 5,
      droppedPatches: 0,
      stateAhead: false,
      restoredEventSeq: 0,
    });
    const after = readBack(dir);
    expect(after.messages).toEqual(before.messages);
    expect(after.version).toBe(5);
    expect(after.notes).toEqual(notesThrough(4));
    expect(after.types).not.toContain("agent.restored");
  });

  it("rolls state.db back to the ledger when messages.db lost its last turns", () => {
    const agent = recordAgent(dir, 4);
    expect(cutMessagesAfter(dir, turnAt(agent, 2).seqs.done)).toBe(2 * ROWS_PER_TURN);
    const result = reconcileRestoredAgent(dir, { seqGap: 0 });
    expect(result).toMatchObject({
      lastSeq: turnAt(agent, 2).seqs.done,
      droppedMessages: 0,
      stateVersion: turnAt(agent, 2).version,
      droppedPatches: 2,
      stateAhead: false,
      restoredEventSeq: 0,
    });
    const back = readBack(dir);
    expect(back.types).toEqual(typesThrough(2));
    expect(back.version).toBe(3);
    expect(back.notes).toEqual(notesThrough(2));
    // chronicle.db is rolled back with them: the workspace is as of turn 2.
    expect(result).toMatchObject({ droppedIterations: 2, workspaceAhead: false });
    expect(scalarOf(dir, "chronicle.db", "SELECT max(iteration) FROM iterations")).toBe(turnAt(agent, 2).iteration);
    const workspace = path.join(dir, "workspace");
    fs.rmSync(workspace, { recursive: true, force: true });
    fs.mkdirSync(workspace);
    const chronicle = Chronicle.open({ workspaceDir: workspace, dbPath: path.join(dir, "chronicle.db"), watch: false });
    try {
      const written = chronicle.materializeWorkspace();
      expect(written.iteration).toBe(turnAt(agent, 2).iteration);
      expect(fs.readdirSync(path.join(workspace, "notes")).sort()).toEqual(["1.txt", "2.txt"]);
      // The next capture sees the materialized files as they are: nothing changed.
      expect(chronicle.capture()).toBeUndefined();
    } finally {
      chronicle.close();
    }
  });

  it("leaves chronicle.db ahead (reported) when a file restore made a later iteration the ledger does not record", () => {
    const agent = recordAgent(dir, 4);
    const workspace = path.join(dir, "workspace");
    const chronicle = Chronicle.open({ workspaceDir: workspace, dbPath: path.join(dir, "chronicle.db"), watch: false });
    try {
      fs.rmSync(path.join(workspace, "notes/1.txt"));
      expect(chronicle.capture()?.iteration).toBe(5);
      expect(chronicle.restore("notes/1.txt", turnAt(agent, 1).iteration).iteration).toBe(6); // kind 'restore'
    } finally {
      chronicle.close();
    }
    cutMessagesAfter(dir, turnAt(agent, 2).seqs.done);
    const result = reconcileRestoredAgent(dir, { seqGap: 0 });
    expect(result).toMatchObject({ droppedIterations: 0, workspaceAhead: true, droppedPatches: 2 });
    expect(scalarOf(dir, "chronicle.db", "SELECT count(*) FROM iterations")).toBe(6);
  });

  it("cuts messages back to the last whole turn whose state version state.db holds", () => {
    const agent = recordAgent(dir, 4);
    expect(cutPatchesAfter(dir, turnAt(agent, 2).version)).toBe(2);
    const result = reconcileRestoredAgent(dir, { seqGap: 0 });
    expect(result).toMatchObject({
      lastSeq: turnAt(agent, 4).seqs.inbound,
      droppedMessages: 2 * EVENTS_PER_TURN,
      interruptedTurns: [turnAt(agent, 3).turn, turnAt(agent, 4).turn],
      queuedTurns: [],
      stateVersion: 3,
      droppedPatches: 0,
      stateAhead: false,
      restoredEventSeq: 0,
    });
    const back = readBack(dir);
    expect(back.seqs.filter((seq) => seq <= turnAt(agent, 2).seqs.done)).toEqual(readBackSeqsThrough(agent, 2));
    expect(back.types).toEqual(typesAfterCut(2, 2));
    expectInterrupted(back, [turnAt(agent, 3), turnAt(agent, 4)]);
    expect(back.version).toBe(3);
    expect(back.notes).toEqual(notesThrough(2));
  });

  it("cuts messages back before the first workspace.changed whose iteration chronicle.db lacks, and rolls state back with them", () => {
    const agent = recordAgent(dir, 4);
    cutIterationsAfter(dir, turnAt(agent, 2).iteration);
    const result = reconcileRestoredAgent(dir, { seqGap: 0 });
    expect(result).toMatchObject({
      lastSeq: turnAt(agent, 4).seqs.inbound,
      droppedMessages: 2 * EVENTS_PER_TURN,
      interruptedTurns: [turnAt(agent, 3).turn, turnAt(agent, 4).turn],
      stateVersion: 3,
      droppedPatches: 2,
      stateAhead: false,
      restoredEventSeq: 0,
    });
    const back = readBack(dir);
    expect(back.types).toEqual(typesAfterCut(2, 2));
    expectInterrupted(back, [turnAt(agent, 3), turnAt(agent, 4)]);
    expect(back.version).toBe(3);
    expect(back.notes).toEqual(notesThrough(2));
    expect(scalarOf(dir, "state.db", "SELECT max(version) FROM patches")).toBe(3);
  });

  it("drops a whole turn whose state delta made it but whose workspace iteration did not", () => {
    const agent = recordAgent(dir, 4);
    // Turn 4's patch is in state.db (and its state.delta in messages.db), its capture is not in chronicle.db.
    cutIterationsAfter(dir, turnAt(agent, 3).iteration);
    const result = reconcileRestoredAgent(dir, { seqGap: 0 });
    expect(result).toMatchObject({ lastSeq: turnAt(agent, 4).seqs.inbound, droppedMessages: EVENTS_PER_TURN, interruptedTurns: [turnAt(agent, 4).turn], droppedPatches: 1, stateVersion: 4, stateAhead: false });
    const back = readBack(dir);
    expect(back.types).toEqual(typesAfterCut(3, 1));
    expect(back.seqs).toContain(turnAt(agent, 4).seqs.inbound);
    expect(back.messages.filter((m) => m.turn === turnAt(agent, 4).turn).map((m) => m.messageType)).toEqual(["error", "turn.done"]);
    expectInterrupted(back, [turnAt(agent, 4)]);
    expect(back.notes).toEqual(notesThrough(3));
  });

  it("drops a turn cut in the middle when a later database lacks its writes", () => {
    const agent = recordAgent(dir, 4);
    // messages.db got turn 3 up to its state.delta; state.db only got through turn 2.
    cutMessagesAfter(dir, turnAt(agent, 3).seqs.delta);
    cutPatchesAfter(dir, turnAt(agent, 2).version);
    const result = reconcileRestoredAgent(dir, { seqGap: 0 });
    expect(result).toMatchObject({
      lastSeq: turnAt(agent, 3).seqs.inbound,
      droppedMessages: 1,
      interruptedTurns: [turnAt(agent, 3).turn],
      stateVersion: 3,
      droppedPatches: 0,
      stateAhead: false,
      restoredEventSeq: 0,
    });
    const back = readBack(dir);
    expect(back.types).toEqual(typesAfterCut(2, 1));
    expectInterrupted(back, [turnAt(agent, 3)]);
    expect(back.notes).toEqual(notesThrough(2));
  });

  // The host died mid-turn and nothing is missing elsewhere: the partial turn still goes (whole turns only).
  it("drops a turn cut in the middle even when state.db and chronicle.db hold its writes", () => {
    const agent = recordAgent(dir, 4);
    // messages.db got turn 3 through its workspace.changed; state.db and chronicle.db have all 4 turns.
    cutMessagesAfter(dir, turnAt(agent, 3).seqs.workspace);
    const result = reconcileRestoredAgent(dir, { seqGap: 0 });
    expect(result).toMatchObject({
      lastSeq: turnAt(agent, 3).seqs.inbound,
      droppedMessages: 2,
      interruptedTurns: [turnAt(agent, 3).turn],
      stateVersion: 3,
      droppedPatches: 2,
      stateAhead: false,
      restoredEventSeq: 0,
    });
    const back = readBack(dir);
    expect(back.types).toEqual(typesAfterCut(2, 1));
    expectInterrupted(back, [turnAt(agent, 3)]);
    expect(back.notes).toEqual(notesThrough(2));
  });

  it("drops every event when state.db lost even the initial patch (the acknowledged messages stay, interrupted)", () => {
    const agent = recordAgent(dir, 2);
    cutPatchesAfter(dir, 0);
    const result = reconcileRestoredAgent(dir, { seqGap: 0 });
    expect(result).toMatchObject({ lastSeq: turnAt(agent, 2).seqs.inbound, droppedMessages: 1 + 2 * EVENTS_PER_TURN, stateVersion: 0, droppedPatches: 0, stateAhead: false, restoredEventSeq: 0 });
    const back = readBack(dir);
    expect(back.types).toEqual(["process_message", "process_message", "error", "turn.done", "error", "turn.done"]);
    expectInterrupted(back, [turnAt(agent, 1), turnAt(agent, 2)]);
    expect(back.version).toBe(0);
    expect(back.notes).toBeUndefined();
  });

  it("leaves state.db ahead (reported) when it snapshotted past the cut", () => {
    const agent = recordAgent(dir, 4, { snapshotAfterTurn: 4 });
    expect(scalarOf(dir, "state.db", "SELECT max(version) FROM snapshots")).toBe(5);
    cutMessagesAfter(dir, turnAt(agent, 2).seqs.done);
    const result = reconcileRestoredAgent(dir, { seqGap: 0 });
    expect(result).toMatchObject({
      lastSeq: turnAt(agent, 2).seqs.done,
      droppedMessages: 0,
      stateVersion: 5,
      droppedPatches: 0,
      stateAhead: true,
      restoredEventSeq: 0,
    });
    expect(scalarOf(dir, "state.db", "SELECT count(*) FROM patches")).toBe(5);
    const back = readBack(dir);
    expect(back.types).toEqual(typesThrough(2));
    expect(back.version).toBe(5);
    expect(back.notes).toEqual(notesThrough(4));
  });

  it("still rolls state.db back when its newest snapshot is not past the cut", () => {
    const agent = recordAgent(dir, 4, { snapshotAfterTurn: 2 });
    expect(scalarOf(dir, "state.db", "SELECT max(version) FROM snapshots")).toBe(3);
    cutMessagesAfter(dir, turnAt(agent, 2).seqs.done);
    const result = reconcileRestoredAgent(dir, { seqGap: 0 });
    expect(result).toMatchObject({ lastSeq: turnAt(agent, 2).seqs.done, droppedPatches: 2, stateVersion: 3, stateAhead: false });
    const back = readBack(dir);
    expect(back.version).toBe(3);
    expect(back.notes).toEqual(notesThrough(2));
  });

  it("records agent.restored a seq gap after the last kept seq, and later appends go after it", () => {
    expect(Number.isSafeInteger(UNCLEAN_RESTORE_SEQ_GAP)).toBe(true);
    expect(UNCLEAN_RESTORE_SEQ_GAP).toBeGreaterThan(0);
    const agent = recordAgent(dir, 4);
    cutPatchesAfter(dir, turnAt(agent, 3).version);
    const before = Date.now();
    const result = reconcileRestoredAgent(dir, { seqGap: UNCLEAN_RESTORE_SEQ_GAP, reason: "host-a lost" });
    const lastSeq = turnAt(agent, 4).seqs.inbound;
    expect(result).toMatchObject({
      lastSeq,
      droppedMessages: EVENTS_PER_TURN,
      interruptedTurns: [turnAt(agent, 4).turn],
      stateVersion: 4,
      droppedPatches: 0,
      stateAhead: false,
      restoredEventSeq: lastSeq + UNCLEAN_RESTORE_SEQ_GAP,
    });

    const back = readBack(dir);
    expect(back.types).toEqual(typesAfterCut(3, 1, ["agent.restored"]));
    expectInterrupted(back, [turnAt(agent, 4)]);
    const restored = back.messages.find((m) => m.messageType === "agent.restored");
    expect(restored).toMatchObject({
      seq: lastSeq + UNCLEAN_RESTORE_SEQ_GAP,
      direction: "outbound",
      instanceId: "",
      turn: 0,
      messageType: "agent.restored",
      content: {
        reason: "host-a lost",
        last_replicated_seq: lastSeq,
        dropped_messages: EVENTS_PER_TURN,
        state_version: 4,
        interrupted_turns: [turnAt(agent, 4).turn],
        queued_turns: [],
      },
    });
    expect(restored?.timestamp).toBeGreaterThanOrEqual(before);
    expect(back.seqs[back.seqs.length - 4]).toBe(lastSeq);
    // The interrupted turn's error and turn.done come right after the marker.
    expect(back.seqs.slice(-3)).toEqual([0, 1, 2].map((i) => result.restoredEventSeq + i));

    const store = AgentStore.open({ dir });
    try {
      expect(store.messages.lastSeq()).toBe(result.restoredEventSeq + 2);
      const next = store.messages.append({ direction: "inbound", instanceId: "inst_next", turn: 0, messageType: "process_message", content: { text: "after restore" }, timestamp: Date.now() });
      expect(next.seq).toBe(result.restoredEventSeq + 3);
    } finally {
      store.close();
    }
  });

  it("gives agent.restored a default reason when none is passed", () => {
    const agent = recordAgent(dir, 2);
    const result = reconcileRestoredAgent(dir, { seqGap: 10 });
    expect(result.restoredEventSeq).toBe(turnAt(agent, 2).seqs.done + 10);
    const restored = readBack(dir).messages.find((m) => m.messageType === "agent.restored");
    expect(restored?.seq).toBe(result.restoredEventSeq);
    expect(typeof restored?.content?.reason).toBe("string");
    expect(String(restored?.content?.reason)).not.toBe("");
    expect(restored?.content).toMatchObject({ last_replicated_seq: turnAt(agent, 2).seqs.done, dropped_messages: 0, state_version: 3 });
  });

  it("writes agent.restored at seq gap when the whole ledger was dropped", () => {
    const agent = recordAgent(dir, 2);
    cutPatchesAfter(dir, 0);
    const result = reconcileRestoredAgent(dir, { seqGap: UNCLEAN_RESTORE_SEQ_GAP });
    const lastSeq = turnAt(agent, 2).seqs.inbound;
    expect(result).toMatchObject({ lastSeq, stateVersion: 0, restoredEventSeq: lastSeq + UNCLEAN_RESTORE_SEQ_GAP });
    const back = readBack(dir);
    expect(back.seqs).toEqual([turnAt(agent, 1).seqs.inbound, lastSeq, ...[0, 1, 2, 3, 4].map((i) => lastSeq + UNCLEAN_RESTORE_SEQ_GAP + i)]);
    expect(back.messages[2]?.content).toMatchObject({ last_replicated_seq: lastSeq, dropped_messages: 1 + 2 * EVENTS_PER_TURN, state_version: 0 });
  });

  it("writes no agent.restored with seqGap 0", () => {
    const agent = recordAgent(dir, 3);
    cutMessagesAfter(dir, turnAt(agent, 2).seqs.done);
    const result = reconcileRestoredAgent(dir, { seqGap: 0, reason: "fork" });
    expect(result.restoredEventSeq).toBe(0);
    const back = readBack(dir);
    expect(back.types).not.toContain("agent.restored");
    expect(back.seqs[back.seqs.length - 1]).toBe(turnAt(agent, 2).seqs.done);
  });

  /** Appends acknowledged messages no turn began for (queued behind the last turn when the host died). */
  function queueMessages(texts: string[]): number[] {
    const store = AgentStore.open({ dir });
    try {
      return texts.map((text) => store.messages.append({ direction: "inbound", instanceId: INSTANCE, turn: 0, messageType: "process_message", content: { text }, timestamp: Date.now() }).seq);
    } finally {
      store.close();
    }
  }

  it("keeps acknowledged messages whose turn never began: they stay queued for the agent's next start", () => {
    const agent = recordAgent(dir, 3);
    const queued = queueMessages(["q1", "q2"]);
    cutPatchesAfter(dir, turnAt(agent, 2).version); // turn 3 is cut: it had begun, so it is interrupted
    const result = reconcileRestoredAgent(dir, { seqGap: UNCLEAN_RESTORE_SEQ_GAP });
    expect(result).toMatchObject({ lastSeq: queued[1], interruptedTurns: [turnAt(agent, 3).turn], queuedTurns: queued });
    const store = AgentStore.open({ dir });
    try {
      const found = findUnfinishedTurns(store.messages);
      expect(found).toEqual({ begun: [], waiting: queued.map((turn, i) => ({ turn, content: { text: `q${i + 1}` } })) });
      const marker = store.messages.list(0, 1000).find((m) => m.messageType === "agent.restored");
      expect(marker?.content).toMatchObject({ interrupted_turns: [turnAt(agent, 3).turn], queued_turns: queued });
    } finally {
      store.close();
    }
  });

  it("a point-in-time copy (unfinished: close) ends every unfinished message with an error instead", () => {
    const agent = recordAgent(dir, 3);
    const queued = queueMessages(["q1", "q2"]);
    cutPatchesAfter(dir, turnAt(agent, 2).version);
    const result = reconcileRestoredAgent(dir, { seqGap: 0, unfinished: "close" });
    const closed = [turnAt(agent, 3).turn, ...queued];
    expect(result).toMatchObject({ interruptedTurns: closed, queuedTurns: [] });
    const back = readBack(dir);
    const errors = back.messages.filter((m) => m.messageType === "error" && m.instanceId === "");
    expect(errors.map((m) => m.turn)).toEqual(closed);
    for (const error of errors) expect(String(error.content?.message)).toMatch(/^not run: /);
    expect(back.messages.filter((m) => m.messageType === "turn.done" && closed.includes(m.turn)).map((m) => m.content)).toEqual(closed.map((turn) => ({ turn, ok: false })));
    const store = AgentStore.open({ dir });
    try {
      expect(findUnfinishedTurns(store.messages)).toEqual({ begun: [], waiting: [] });
    } finally {
      store.close();
    }
  });

  it("returns zeros for a directory without messages.db and creates nothing", () => {
    fs.mkdirSync(dir, { recursive: true });
    const zeros = { lastSeq: 0, droppedMessages: 0, interruptedTurns: [], queuedTurns: [], stateVersion: 0, droppedPatches: 0, stateAhead: false, droppedIterations: 0, workspaceAhead: false, restoredEventSeq: 0 };
    expect(reconcileRestoredAgent(dir, { seqGap: 0 })).toEqual(zeros);
    expect(reconcileRestoredAgent(dir, { seqGap: UNCLEAN_RESTORE_SEQ_GAP })).toEqual(zeros);
    expect(reconcileRestoredAgent(path.join(root, "missing"), { seqGap: UNCLEAN_RESTORE_SEQ_GAP })).toEqual(zeros);
    expect(fs.readdirSync(dir)).toEqual([]);
    expect(fs.existsSync(path.join(root, "missing"))).toBe(false);
  });

  it("leaves no database handle open (the directory can be reopened and written at once)", () => {
    const agent = recordAgent(dir, 2);
    cutPatchesAfter(dir, turnAt(agent, 1).version);
    reconcileRestoredAgent(dir, { seqGap: UNCLEAN_RESTORE_SEQ_GAP });
    // An exclusive lock succeeds only when no connection (here: reconcile's) still holds the files.
    for (const name of ["messages.db", "state.db", "chronicle.db"]) {
      const handle = new Database(path.join(dir, name));
      try {
        handle.pragma("locking_mode = EXCLUSIVE");
        expect(() => handle.exec("BEGIN EXCLUSIVE; COMMIT;")).not.toThrow();
      } finally {
        handle.close();
      }
    }
    const chronicle = Chronicle.open({ workspaceDir: path.join(dir, "workspace"), dbPath: path.join(dir, "chronicle.db"), watch: false });
    try {
      expect(chronicle.latestIteration).toBe(turnAt(agent, 1).iteration); // rolled back with the ledger
    } finally {
      chronicle.close();
    }
  });
});
