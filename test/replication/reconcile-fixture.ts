/**
 * The recorded agents of the reconcile tests: agent directories written through the real stores
 * (AgentStore + Chronicle) the way AgentInstance records turns, cut the way a host death leaves a
 * Litestream restore, and read back the way the coordinator reopens them.
 */
import { afterEach, beforeEach, expect } from "@jest/globals";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { AgentStore } from "../../services/coordinator/store/agent-store.js";
import type { MessageRow } from "../../services/coordinator/store/message-log.js";
import { Chronicle } from "../../services/coordinator/chronicle/chronicle.js";
import type { JsonObject, JsonPatchOp } from "../../services/shared/json.js";
export const INSTANCE = "inst_reconcile";

/** What one recorded turn left in the three databases. */
export interface RecordedTurn {
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

export interface RecordedAgent {
  dir: string;
  /** Seq of the turn-0 state.delta that created `{ notes: [] }` (state version 1). */
  initSeq: number;
  turns: RecordedTurn[];
}

export interface BuildOptions {
  /** Call state.snapshot() right after this turn (0: after the init patch). */
  snapshotAfterTurn?: number;
}

export function turnAt(agent: RecordedAgent, n: number): RecordedTurn {
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
export function recordAgent(dir: string, turns: number, options: BuildOptions = {}): RecordedAgent {
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
export function cut(dir: string, db: "messages.db" | "state.db" | "chronicle.db", sql: string, ...params: number[]): number {
  const handle = new Database(path.join(dir, db));
  try {
    return handle.prepare(sql).run(...params).changes;
  } finally {
    handle.close();
  }
}

/** messages.db replicated only through `seq`. */
export function cutMessagesAfter(dir: string, seq: number): number {
  return cut(dir, "messages.db", "DELETE FROM messages WHERE seq > ?", seq);
}

/** state.db replicated only through `version`. */
export function cutPatchesAfter(dir: string, version: number): number {
  return cut(dir, "state.db", "DELETE FROM patches WHERE version > ?", version);
}

/** chronicle.db replicated only through `iteration` (the iteration rows and their file versions). */
export function cutIterationsAfter(dir: string, iteration: number): void {
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

export function scalarOf(dir: string, db: "state.db" | "chronicle.db", sql: string): number {
  const handle = new Database(path.join(dir, db), { readonly: true });
  try {
    return (handle.prepare(sql).pluck().get() as number | null) ?? 0;
  } finally {
    handle.close();
  }
}

export interface ReadBack {
  messages: MessageRow[];
  seqs: number[];
  types: string[];
  version: number;
  notes: unknown;
}

/** The directory as the coordinator sees it after reopening. */
export function readBack(dir: string): ReadBack {
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
export function readBackSeqsThrough(agent: RecordedAgent, n: number): number[] {
  return [agent.initSeq, ...agent.turns.slice(0, n).flatMap((t) => [t.seqs.inbound, t.seqs.delta, t.seqs.workspace, t.seqs.complete, t.seqs.done])];
}

export function notesThrough(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `t${i + 1}`);
}

/** Message types of the init delta followed by `n` whole turns. */
export function typesThrough(n: number): string[] {
  const turn = ["process_message", "state.delta", "workspace.changed", "complete", "turn.done"];
  return ["state.delta", ...Array.from({ length: n }, () => turn).flat()];
}

export const ROWS_PER_TURN = 5;
/** A cut turn keeps its acknowledged message (the delivery promise); its other rows go. */
export const EVENTS_PER_TURN = ROWS_PER_TURN - 1;

/**
 * Message types after a cut of whole turns that had begun: `kept` whole turns, the cut turns' messages (with
 * `between` after them), then `error` + `turn.done` for each cut turn.
 */
export function typesAfterCut(kept: number, cutTurns: number, between: string[] = []): string[] {
  return [...typesThrough(kept), ...Array.from({ length: cutTurns }, () => "process_message"), ...between, ...Array.from({ length: cutTurns }, () => ["error", "turn.done"]).flat()];
}

/** The cut turns end as interrupted, in order: `error` then `turn.done` (ok: false), recorded by the platform. */
export function expectInterrupted(back: ReadBack, turns: RecordedTurn[]): void {
  const settled = back.messages.filter((m) => m.instanceId === "" && (m.messageType === "error" || m.messageType === "turn.done"));
  expect(settled.map((m) => [m.messageType, m.turn])).toEqual(
    turns.flatMap((t) => [
      ["error", t.turn],
      ["turn.done", t.turn],
    ]),
  );
  expect(settled.filter((m) => m.messageType === "turn.done").map((m) => m.content)).toEqual(turns.map((t) => ({ turn: t.turn, ok: false })));
  for (const error of settled.filter((m) => m.messageType === "error")) expect(String(error.content?.message)).toMatch(/^interrupted: /);
}

/** A fresh `<root>/agents/agent-1` per test, removed after it. */
export function useAgentDir(): { readonly dir: string } {
  let root = "";
  const current = { dir: "" };
  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "podium-reconcile-"));
    current.dir = path.join(root, "agents", "agent-1");
  });
  afterEach(() => {
    fs.rmSync(root, { recursive: true, force: true });
  });
  return current;
}
