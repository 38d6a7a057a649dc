/**
 * reconcileRestoredAgent after the cut: the agent.restored marker and its seq gap, acknowledged messages
 * kept (or ended, for point-in-time copies), and no database handle left open (fixture: reconcile-fixture.ts).
 */
import { describe, expect, it } from "@jest/globals";
import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { AgentStore } from "../../services/coordinator/store/agent-store.js";
import { Chronicle } from "../../services/coordinator/chronicle/chronicle.js";
import { reconcileRestoredAgent, UNCLEAN_RESTORE_SEQ_GAP } from "../../services/replication/restore-reconcile.js";
import { findUnfinishedTurns } from "../../services/coordinator/unfinished-turns.js";
import { INSTANCE, turnAt, recordAgent, cutMessagesAfter, cutPatchesAfter, readBack, EVENTS_PER_TURN, typesAfterCut, expectInterrupted, useAgentDir } from "./reconcile-fixture.js";

describe("reconcileRestoredAgent: the ledger after the cut", () => {
  const agentDir = useAgentDir();

  it("records agent.restored a seq gap after the last kept seq, and later appends go after it", () => {
    expect(Number.isSafeInteger(UNCLEAN_RESTORE_SEQ_GAP)).toBe(true);
    expect(UNCLEAN_RESTORE_SEQ_GAP).toBeGreaterThan(0);
    const agent = recordAgent(agentDir.dir, 4);
    cutPatchesAfter(agentDir.dir, turnAt(agent, 3).version);
    const before = Date.now();
    const result = reconcileRestoredAgent(agentDir.dir, { seqGap: UNCLEAN_RESTORE_SEQ_GAP, reason: "host-a lost" });
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

    const back = readBack(agentDir.dir);
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

    const store = AgentStore.open({ dir: agentDir.dir });
    try {
      expect(store.messages.lastSeq()).toBe(result.restoredEventSeq + 2);
      const next = store.messages.append({ direction: "inbound", instanceId: "inst_next", turn: 0, messageType: "process_message", content: { text: "after restore" }, timestamp: Date.now() });
      expect(next.seq).toBe(result.restoredEventSeq + 3);
    } finally {
      store.close();
    }
  });

  it("gives agent.restored a default reason when none is passed", () => {
    const agent = recordAgent(agentDir.dir, 2);
    const result = reconcileRestoredAgent(agentDir.dir, { seqGap: 10 });
    expect(result.restoredEventSeq).toBe(turnAt(agent, 2).seqs.done + 10);
    const restored = readBack(agentDir.dir).messages.find((m) => m.messageType === "agent.restored");
    expect(restored?.seq).toBe(result.restoredEventSeq);
    expect(typeof restored?.content?.reason).toBe("string");
    expect(String(restored?.content?.reason)).not.toBe("");
    expect(restored?.content).toMatchObject({ last_replicated_seq: turnAt(agent, 2).seqs.done, dropped_messages: 0, state_version: 3 });
  });

  it("writes agent.restored at seq gap when the whole ledger was dropped", () => {
    const agent = recordAgent(agentDir.dir, 2);
    cutPatchesAfter(agentDir.dir, 0);
    const result = reconcileRestoredAgent(agentDir.dir, { seqGap: UNCLEAN_RESTORE_SEQ_GAP });
    const lastSeq = turnAt(agent, 2).seqs.inbound;
    expect(result).toMatchObject({ lastSeq, stateVersion: 0, restoredEventSeq: lastSeq + UNCLEAN_RESTORE_SEQ_GAP });
    const back = readBack(agentDir.dir);
    expect(back.seqs).toEqual([turnAt(agent, 1).seqs.inbound, lastSeq, ...[0, 1, 2, 3, 4].map((i) => lastSeq + UNCLEAN_RESTORE_SEQ_GAP + i)]);
    expect(back.messages[2]?.content).toMatchObject({ last_replicated_seq: lastSeq, dropped_messages: 1 + 2 * EVENTS_PER_TURN, state_version: 0 });
  });

  it("writes no agent.restored with seqGap 0", () => {
    const agent = recordAgent(agentDir.dir, 3);
    cutMessagesAfter(agentDir.dir, turnAt(agent, 2).seqs.done);
    const result = reconcileRestoredAgent(agentDir.dir, { seqGap: 0, reason: "fork" });
    expect(result.restoredEventSeq).toBe(0);
    const back = readBack(agentDir.dir);
    expect(back.types).not.toContain("agent.restored");
    expect(back.seqs[back.seqs.length - 1]).toBe(turnAt(agent, 2).seqs.done);
  });

  /** Appends acknowledged messages no turn began for (queued behind the last turn when the host died). */
  function queueMessages(texts: string[]): number[] {
    const store = AgentStore.open({ dir: agentDir.dir });
    try {
      return texts.map((text) => store.messages.append({ direction: "inbound", instanceId: INSTANCE, turn: 0, messageType: "process_message", content: { text }, timestamp: Date.now() }).seq);
    } finally {
      store.close();
    }
  }

  it("keeps acknowledged messages whose turn never began: they stay queued for the agent's next start", () => {
    const agent = recordAgent(agentDir.dir, 3);
    const queued = queueMessages(["q1", "q2"]);
    cutPatchesAfter(agentDir.dir, turnAt(agent, 2).version); // turn 3 is cut: it had begun, so it is interrupted
    const result = reconcileRestoredAgent(agentDir.dir, { seqGap: UNCLEAN_RESTORE_SEQ_GAP });
    expect(result).toMatchObject({ lastSeq: queued[1], interruptedTurns: [turnAt(agent, 3).turn], queuedTurns: queued });
    const store = AgentStore.open({ dir: agentDir.dir });
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
    const agent = recordAgent(agentDir.dir, 3);
    const queued = queueMessages(["q1", "q2"]);
    cutPatchesAfter(agentDir.dir, turnAt(agent, 2).version);
    const result = reconcileRestoredAgent(agentDir.dir, { seqGap: 0, unfinished: "close" });
    const closed = [turnAt(agent, 3).turn, ...queued];
    expect(result).toMatchObject({ interruptedTurns: closed, queuedTurns: [] });
    const back = readBack(agentDir.dir);
    const errors = back.messages.filter((m) => m.messageType === "error" && m.instanceId === "");
    expect(errors.map((m) => m.turn)).toEqual(closed);
    for (const error of errors) expect(String(error.content?.message)).toMatch(/^not run: /);
    expect(back.messages.filter((m) => m.messageType === "turn.done" && closed.includes(m.turn)).map((m) => m.content)).toEqual(closed.map((turn) => ({ turn, ok: false })));
    const store = AgentStore.open({ dir: agentDir.dir });
    try {
      expect(findUnfinishedTurns(store.messages)).toEqual({ begun: [], waiting: [] });
    } finally {
      store.close();
    }
  });

  it("returns zeros for a directory without messages.db and creates nothing", () => {
    fs.mkdirSync(agentDir.dir, { recursive: true });
    const zeros = {
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
    expect(reconcileRestoredAgent(agentDir.dir, { seqGap: 0 })).toEqual(zeros);
    expect(reconcileRestoredAgent(agentDir.dir, { seqGap: UNCLEAN_RESTORE_SEQ_GAP })).toEqual(zeros);
    expect(reconcileRestoredAgent(path.join(agentDir.dir, "..", "missing"), { seqGap: UNCLEAN_RESTORE_SEQ_GAP })).toEqual(zeros);
    expect(fs.readdirSync(agentDir.dir)).toEqual([]);
    expect(fs.existsSync(path.join(agentDir.dir, "..", "missing"))).toBe(false);
  });

  it("leaves no database handle open (the directory can be reopened and written at once)", () => {
    const agent = recordAgent(agentDir.dir, 2);
    cutPatchesAfter(agentDir.dir, turnAt(agent, 1).version);
    reconcileRestoredAgent(agentDir.dir, { seqGap: UNCLEAN_RESTORE_SEQ_GAP });
    // An exclusive lock succeeds only when no connection (here: reconcile's) still holds the files.
    for (const name of ["messages.db", "state.db", "chronicle.db"]) {
      const handle = new Database(path.join(agentDir.dir, name));
      try {
        handle.pragma("locking_mode = EXCLUSIVE");
        expect(() => handle.exec("BEGIN EXCLUSIVE; COMMIT;")).not.toThrow();
      } finally {
        handle.close();
      }
    }
    const chronicle = Chronicle.open({ workspaceDir: path.join(agentDir.dir, "workspace"), dbPath: path.join(agentDir.dir, "chronicle.db"), watch: false });
    try {
      expect(chronicle.latestIteration).toBe(turnAt(agent, 1).iteration); // rolled back with the ledger
    } finally {
      chronicle.close();
    }
  });
});
