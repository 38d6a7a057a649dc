/**
 * findUnfinishedTurns on messages.db written through the real store, the way AgentInstance records turns:
 * what a coordinator that died left unfinished, and what it must not touch again.
 */
import { describe, it, expect, beforeEach, afterEach } from "@jest/globals";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { AgentStore } from "../../services/coordinator/store/agent-store.js";
import { findUnfinishedTurns } from "../../services/coordinator/unfinished-turns.js";
import type { JsonObject } from "../../services/shared/json.js";

let dir: string;
let store: AgentStore;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-unfinished-"));
  store = AgentStore.open({ dir });
});

afterEach(() => {
  store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const inbound = (text: string): number => store.messages.append({ direction: "inbound", instanceId: "inst-1", turn: 0, messageType: "process_message", content: { text }, timestamp: Date.now() }).seq;
const outbound = (turn: number, messageType: string, content?: JsonObject): number =>
  store.messages.append({ direction: "outbound", instanceId: "inst-1", turn, messageType, content, timestamp: Date.now() }).seq;
const finish = (turn: number, ok = true): void => {
  outbound(turn, ok ? "complete" : "error", ok ? {} : { message: "boom" });
  outbound(turn, "turn.done", { turn, ok });
};
const turnsOf = (list: { turn: number }[]): number[] => list.map((t) => t.turn);

describe("findUnfinishedTurns", () => {
  it("finds nothing in an empty log or one whose turns all ended", () => {
    expect(findUnfinishedTurns(store.messages)).toEqual({ begun: [], waiting: [] });
    const a = inbound("a");
    finish(a);
    const b = inbound("b");
    finish(b, false);
    outbound(0, "terminated", { reason: "stopped" });
    expect(findUnfinishedTurns(store.messages)).toEqual({ begun: [], waiting: [] });
  });

  it("after a coordinator died mid-turn: the running turn has begun, the queued ones wait, in order, with their content", () => {
    const a = inbound("a");
    finish(a);
    const b = inbound("b");
    const c = inbound("c");
    outbound(b, "stream_start", { turn: 1 });
    const d = inbound("d");
    outbound(b, "stream_update", { text: "x" });
    const found = findUnfinishedTurns(store.messages);
    expect(turnsOf(found.begun)).toEqual([b]);
    expect(found.waiting).toEqual([
      { turn: c, content: { text: "c" } },
      { turn: d, content: { text: "d" } },
    ]);
  });

  it("reads back only to the newest turn end, however long the log", () => {
    for (let i = 0; i < 1200; i++) finish(inbound(`old ${i}`));
    const queued = inbound("queued");
    let pages = 0;
    const found = findUnfinishedTurns({
      listBefore: (before, limit, options) => {
        pages++;
        return store.messages.listBefore(before, limit, options);
      },
    });
    expect(turnsOf(found.waiting)).toEqual([queued]);
    expect(pages).toBe(1); // the newest page holds the newest turn end: nothing older is read
  });

  it("messages queued behind a turn that then ended are still found (they are older than its turn.done)", () => {
    const a = inbound("a");
    const b = inbound("b"); // queued while a ran
    finish(a);
    expect(turnsOf(findUnfinishedTurns(store.messages).waiting)).toEqual([b]);
  });

  it("an instance that ended before turn.done was recorded for ended instances (error, then terminated) left nothing unfinished", () => {
    const a = inbound("a");
    const b = inbound("b");
    outbound(a, "stream_start");
    outbound(a, "error", { message: "agent process exited during turn" });
    outbound(b, "error", { message: "instance ended before this message was processed", turn: b });
    outbound(0, "terminated", { reason: "crashed" });
    expect(findUnfinishedTurns(store.messages)).toEqual({ begun: [], waiting: [] });
  });

  it("messages an instance that never became ready left queued (no error) stay unfinished after its terminated", () => {
    const a = inbound("a");
    finish(a);
    const b = inbound("b");
    outbound(0, "terminated", { reason: "failed to start" });
    expect(turnsOf(findUnfinishedTurns(store.messages).waiting)).toEqual([b]);
  });

  it("an error an agent sent mid-turn does not end the turn", () => {
    const a = inbound("a");
    outbound(a, "error", { message: "a tool failed, carrying on" });
    expect(turnsOf(findUnfinishedTurns(store.messages).begun)).toEqual([a]);
  });
});
