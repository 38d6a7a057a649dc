/**
 * reconcileRestoredAgent cutting a Litestream restore back to one consistent whole turn: each database
 * was replicated on its own, so each ends at a different point (fixture: reconcile-fixture.ts).
 */
import { describe, expect, it } from "@jest/globals";
import fs from "node:fs";
import path from "node:path";
import { Chronicle } from "../../services/coordinator/chronicle/chronicle.js";
import { reconcileRestoredAgent } from "../../services/replication/restore-reconcile.js";
import {
  turnAt,
  recordAgent,
  cutMessagesAfter,
  cutPatchesAfter,
  cutIterationsAfter,
  scalarOf,
  readBack,
  readBackSeqsThrough,
  notesThrough,
  typesThrough,
  ROWS_PER_TURN,
  EVENTS_PER_TURN,
  typesAfterCut,
  expectInterrupted,
  useAgentDir,
} from "./reconcile-fixture.js";

describe("reconcileRestoredAgent: cutting to a whole turn", () => {
  const agentDir = useAgentDir();

  it("records turns the way the coordinator does (fixture sanity)", () => {
    const agent = recordAgent(agentDir.dir, 3);
    expect(agent.initSeq).toBe(1);
    expect(agent.turns.map((t) => [t.turn, t.version, t.iteration])).toEqual([
      [2, 2, 1],
      [7, 3, 2],
      [12, 4, 3],
    ]);
    const back = readBack(agentDir.dir);
    expect(back.types).toEqual(typesThrough(3));
    expect(back.notes).toEqual(notesThrough(3));
    expect(back.messages.filter((m) => m.direction === "outbound" && m.turn > 0).every((m) => agent.turns.some((t) => t.turn === m.turn))).toBe(true);
  });

  it("drops nothing when every database has every turn", () => {
    const agent = recordAgent(agentDir.dir, 4);
    const before = readBack(agentDir.dir);
    const result = reconcileRestoredAgent(agentDir.dir, { seqGap: 0 });
    expect(result).toMatchObject({
      lastSeq: turnAt(agent, 4).seqs.done,
      droppedMessages: 0,
      stateVersion: 5,
      droppedPatches: 0,
      stateAhead: false,
      restoredEventSeq: 0,
    });
    const after = readBack(agentDir.dir);
    expect(after.messages).toEqual(before.messages);
    expect(after.version).toBe(5);
    expect(after.notes).toEqual(notesThrough(4));
    expect(after.types).not.toContain("agent.restored");
  });

  it("rolls state.db back to the ledger when messages.db lost its last turns", () => {
    const agent = recordAgent(agentDir.dir, 4);
    expect(cutMessagesAfter(agentDir.dir, turnAt(agent, 2).seqs.done)).toBe(2 * ROWS_PER_TURN);
    const result = reconcileRestoredAgent(agentDir.dir, { seqGap: 0 });
    expect(result).toMatchObject({
      lastSeq: turnAt(agent, 2).seqs.done,
      droppedMessages: 0,
      stateVersion: turnAt(agent, 2).version,
      droppedPatches: 2,
      stateAhead: false,
      restoredEventSeq: 0,
    });
    const back = readBack(agentDir.dir);
    expect(back.types).toEqual(typesThrough(2));
    expect(back.version).toBe(3);
    expect(back.notes).toEqual(notesThrough(2));
    // chronicle.db is rolled back with them: the workspace is as of turn 2.
    expect(result).toMatchObject({ droppedIterations: 2, workspaceAhead: false });
    expect(scalarOf(agentDir.dir, "chronicle.db", "SELECT max(iteration) FROM iterations")).toBe(turnAt(agent, 2).iteration);
    const workspace = path.join(agentDir.dir, "workspace");
    fs.rmSync(workspace, { recursive: true, force: true });
    fs.mkdirSync(workspace);
    const chronicle = Chronicle.open({ workspaceDir: workspace, dbPath: path.join(agentDir.dir, "chronicle.db"), watch: false });
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
    const agent = recordAgent(agentDir.dir, 4);
    const workspace = path.join(agentDir.dir, "workspace");
    const chronicle = Chronicle.open({ workspaceDir: workspace, dbPath: path.join(agentDir.dir, "chronicle.db"), watch: false });
    try {
      fs.rmSync(path.join(workspace, "notes/1.txt"));
      expect(chronicle.capture()?.iteration).toBe(5);
      expect(chronicle.restore("notes/1.txt", turnAt(agent, 1).iteration).iteration).toBe(6); // kind 'restore'
    } finally {
      chronicle.close();
    }
    cutMessagesAfter(agentDir.dir, turnAt(agent, 2).seqs.done);
    const result = reconcileRestoredAgent(agentDir.dir, { seqGap: 0 });
    expect(result).toMatchObject({ droppedIterations: 0, workspaceAhead: true, droppedPatches: 2 });
    expect(scalarOf(agentDir.dir, "chronicle.db", "SELECT count(*) FROM iterations")).toBe(6);
  });

  it("cuts messages back to the last whole turn whose state version state.db holds", () => {
    const agent = recordAgent(agentDir.dir, 4);
    expect(cutPatchesAfter(agentDir.dir, turnAt(agent, 2).version)).toBe(2);
    const result = reconcileRestoredAgent(agentDir.dir, { seqGap: 0 });
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
    const back = readBack(agentDir.dir);
    expect(back.seqs.filter((seq) => seq <= turnAt(agent, 2).seqs.done)).toEqual(readBackSeqsThrough(agent, 2));
    expect(back.types).toEqual(typesAfterCut(2, 2));
    expectInterrupted(back, [turnAt(agent, 3), turnAt(agent, 4)]);
    expect(back.version).toBe(3);
    expect(back.notes).toEqual(notesThrough(2));
  });

  it("cuts messages back before the first workspace.changed whose iteration chronicle.db lacks, and rolls state back with them", () => {
    const agent = recordAgent(agentDir.dir, 4);
    cutIterationsAfter(agentDir.dir, turnAt(agent, 2).iteration);
    const result = reconcileRestoredAgent(agentDir.dir, { seqGap: 0 });
    expect(result).toMatchObject({
      lastSeq: turnAt(agent, 4).seqs.inbound,
      droppedMessages: 2 * EVENTS_PER_TURN,
      interruptedTurns: [turnAt(agent, 3).turn, turnAt(agent, 4).turn],
      stateVersion: 3,
      droppedPatches: 2,
      stateAhead: false,
      restoredEventSeq: 0,
    });
    const back = readBack(agentDir.dir);
    expect(back.types).toEqual(typesAfterCut(2, 2));
    expectInterrupted(back, [turnAt(agent, 3), turnAt(agent, 4)]);
    expect(back.version).toBe(3);
    expect(back.notes).toEqual(notesThrough(2));
    expect(scalarOf(agentDir.dir, "state.db", "SELECT max(version) FROM patches")).toBe(3);
  });

  it("drops a whole turn whose state delta made it but whose workspace iteration did not", () => {
    const agent = recordAgent(agentDir.dir, 4);
    // Turn 4's patch is in state.db (and its state.delta in messages.db), its capture is not in chronicle.db.
    cutIterationsAfter(agentDir.dir, turnAt(agent, 3).iteration);
    const result = reconcileRestoredAgent(agentDir.dir, { seqGap: 0 });
    expect(result).toMatchObject({
      lastSeq: turnAt(agent, 4).seqs.inbound,
      droppedMessages: EVENTS_PER_TURN,
      interruptedTurns: [turnAt(agent, 4).turn],
      droppedPatches: 1,
      stateVersion: 4,
      stateAhead: false,
    });
    const back = readBack(agentDir.dir);
    expect(back.types).toEqual(typesAfterCut(3, 1));
    expect(back.seqs).toContain(turnAt(agent, 4).seqs.inbound);
    expect(back.messages.filter((m) => m.turn === turnAt(agent, 4).turn).map((m) => m.messageType)).toEqual(["error", "turn.done"]);
    expectInterrupted(back, [turnAt(agent, 4)]);
    expect(back.notes).toEqual(notesThrough(3));
  });

  it("drops a turn cut in the middle when a later database lacks its writes", () => {
    const agent = recordAgent(agentDir.dir, 4);
    // messages.db got turn 3 up to its state.delta; state.db only got through turn 2.
    cutMessagesAfter(agentDir.dir, turnAt(agent, 3).seqs.delta);
    cutPatchesAfter(agentDir.dir, turnAt(agent, 2).version);
    const result = reconcileRestoredAgent(agentDir.dir, { seqGap: 0 });
    expect(result).toMatchObject({
      lastSeq: turnAt(agent, 3).seqs.inbound,
      droppedMessages: 1,
      interruptedTurns: [turnAt(agent, 3).turn],
      stateVersion: 3,
      droppedPatches: 0,
      stateAhead: false,
      restoredEventSeq: 0,
    });
    const back = readBack(agentDir.dir);
    expect(back.types).toEqual(typesAfterCut(2, 1));
    expectInterrupted(back, [turnAt(agent, 3)]);
    expect(back.notes).toEqual(notesThrough(2));
  });

  // The host died mid-turn and nothing is missing elsewhere: the partial turn still goes (whole turns only).
  it("drops a turn cut in the middle even when state.db and chronicle.db hold its writes", () => {
    const agent = recordAgent(agentDir.dir, 4);
    // messages.db got turn 3 through its workspace.changed; state.db and chronicle.db have all 4 turns.
    cutMessagesAfter(agentDir.dir, turnAt(agent, 3).seqs.workspace);
    const result = reconcileRestoredAgent(agentDir.dir, { seqGap: 0 });
    expect(result).toMatchObject({
      lastSeq: turnAt(agent, 3).seqs.inbound,
      droppedMessages: 2,
      interruptedTurns: [turnAt(agent, 3).turn],
      stateVersion: 3,
      droppedPatches: 2,
      stateAhead: false,
      restoredEventSeq: 0,
    });
    const back = readBack(agentDir.dir);
    expect(back.types).toEqual(typesAfterCut(2, 1));
    expectInterrupted(back, [turnAt(agent, 3)]);
    expect(back.notes).toEqual(notesThrough(2));
  });

  it("drops every event when state.db lost even the initial patch (the acknowledged messages stay, interrupted)", () => {
    const agent = recordAgent(agentDir.dir, 2);
    cutPatchesAfter(agentDir.dir, 0);
    const result = reconcileRestoredAgent(agentDir.dir, { seqGap: 0 });
    expect(result).toMatchObject({ lastSeq: turnAt(agent, 2).seqs.inbound, droppedMessages: 1 + 2 * EVENTS_PER_TURN, stateVersion: 0, droppedPatches: 0, stateAhead: false, restoredEventSeq: 0 });
    const back = readBack(agentDir.dir);
    expect(back.types).toEqual(["process_message", "process_message", "error", "turn.done", "error", "turn.done"]);
    expectInterrupted(back, [turnAt(agent, 1), turnAt(agent, 2)]);
    expect(back.version).toBe(0);
    expect(back.notes).toBeUndefined();
  });

  it("leaves state.db ahead (reported) when it snapshotted past the cut", () => {
    const agent = recordAgent(agentDir.dir, 4, { snapshotAfterTurn: 4 });
    expect(scalarOf(agentDir.dir, "state.db", "SELECT max(version) FROM snapshots")).toBe(5);
    cutMessagesAfter(agentDir.dir, turnAt(agent, 2).seqs.done);
    const result = reconcileRestoredAgent(agentDir.dir, { seqGap: 0 });
    expect(result).toMatchObject({
      lastSeq: turnAt(agent, 2).seqs.done,
      droppedMessages: 0,
      stateVersion: 5,
      droppedPatches: 0,
      stateAhead: true,
      restoredEventSeq: 0,
    });
    expect(scalarOf(agentDir.dir, "state.db", "SELECT count(*) FROM patches")).toBe(5);
    const back = readBack(agentDir.dir);
    expect(back.types).toEqual(typesThrough(2));
    expect(back.version).toBe(5);
    expect(back.notes).toEqual(notesThrough(4));
  });

  it("still rolls state.db back when its newest snapshot is not past the cut", () => {
    const agent = recordAgent(agentDir.dir, 4, { snapshotAfterTurn: 2 });
    expect(scalarOf(agentDir.dir, "state.db", "SELECT max(version) FROM snapshots")).toBe(3);
    cutMessagesAfter(agentDir.dir, turnAt(agent, 2).seqs.done);
    const result = reconcileRestoredAgent(agentDir.dir, { seqGap: 0 });
    expect(result).toMatchObject({ lastSeq: turnAt(agent, 2).seqs.done, droppedPatches: 2, stateVersion: 3, stateAhead: false });
    const back = readBack(agentDir.dir);
    expect(back.version).toBe(3);
    expect(back.notes).toEqual(notesThrough(2));
  });
});
