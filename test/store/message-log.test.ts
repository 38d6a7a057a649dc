import { describe, it, expect, beforeEach, afterEach } from "@jest/globals";
import { Code, ConnectError } from "@connectrpc/connect";
import { AgentStore } from "../../services/coordinator/store/agent-store.js";
import { MESSAGE_PAGE_SIZE, type MessageDirection, type NewMessage } from "../../services/coordinator/store/message-log.js";
import { makeTempDir, removeTempDir } from "./temp-dir.js";

function message(direction: MessageDirection, turn: number, content?: NewMessage["content"]): NewMessage {
  return { direction, instanceId: "inst-1", turn, messageType: direction === "inbound" ? "message" : "event", content, timestamp: 1_700_000_000_000 + turn };
}

describe("MessageLog", () => {
  let dir: string;
  let store: AgentStore | undefined;
  beforeEach(() => {
    dir = makeTempDir();
  });
  afterEach(() => {
    store?.close();
    store = undefined;
    removeTempDir(dir);
  });
  const open = (): AgentStore => (store = AgentStore.open({ dir }));

  it("assigns one strictly increasing seq across both directions and across reopen", () => {
    let log = open().messages;
    expect(log.lastSeq()).toBe(0);
    const seqs = [log.append(message("inbound", 1, { text: "hi" })).seq, log.append(message("outbound", 1, { text: "hello" })).seq, log.append(message("outbound", 1)).seq];
    expect(seqs).toEqual([1, 2, 3]);
    store?.close();
    log = open().messages;
    expect(log.lastSeq()).toBe(3);
    expect(log.append(message("inbound", 2, { text: "again" })).seq).toBe(4);
    expect(log.appendMany([message("outbound", 2), message("outbound", 2)]).map((row) => row.seq)).toEqual([5, 6]);
    expect(log.list(0, 100).map((row) => [row.seq, row.direction])).toEqual([
      [1, "inbound"],
      [2, "outbound"],
      [3, "outbound"],
      [4, "inbound"],
      [5, "outbound"],
      [6, "outbound"],
    ]);
  });

  it("round-trips every column, including absent content", () => {
    const log = open().messages;
    const written = log.append(message("outbound", 7, { text: "x", nested: { list: [1, null, true, "s"] } }));
    log.append(message("outbound", 7));
    const [first, second] = log.list(0, 10);
    expect(first).toEqual(written);
    expect(first).toEqual({
      seq: 1,
      direction: "outbound",
      instanceId: "inst-1",
      turn: 7,
      messageType: "event",
      content: { text: "x", nested: { list: [1, null, true, "s"] } },
      timestamp: 1_700_000_000_007,
    });
    expect(second?.content).toBeUndefined();
  });

  it("pages with list() by seq, optionally by direction", () => {
    const log = open().messages;
    for (let turn = 1; turn <= 10; turn++) {
      log.append(message("inbound", turn, { turn }));
      log.append(message("outbound", turn, { turn }));
    }
    expect(log.list(0, 3).map((row) => row.seq)).toEqual([1, 2, 3]);
    expect(log.list(3, 3).map((row) => row.seq)).toEqual([4, 5, 6]);
    expect(log.list(18, 10).map((row) => row.seq)).toEqual([19, 20]);
    expect(log.list(20, 10)).toEqual([]);
    expect(log.list(0, 0)).toEqual([]);
    expect(log.list(0, 4, "outbound").map((row) => row.seq)).toEqual([2, 4, 6, 8]);
    expect(log.list(8, 100, "inbound").map((row) => row.seq)).toEqual([9, 11, 13, 15, 17, 19]);
    expect(() => log.list(0, -1)).toThrow(ConnectError);
    expect(() => log.list(0.5, 1)).toThrow(expect.objectContaining({ code: Code.InvalidArgument }));
    // Backwards; with inboundContent, outbound rows come without their content.
    expect(log.listBefore(20, 3).map((row) => [row.seq, row.content])).toEqual([
      [19, { turn: 10 }],
      [18, { turn: 9 }],
      [17, { turn: 9 }],
    ]);
    expect(log.listBefore(20, 3, { inboundContent: true }).map((row) => [row.seq, row.direction, row.content])).toEqual([
      [19, "inbound", { turn: 10 }],
      [18, "outbound", undefined],
      [17, "inbound", { turn: 9 }],
    ]);
  });

  it("iterates across page boundaries without loading everything, and sees rows appended meanwhile", () => {
    const log = open().messages;
    const total = MESSAGE_PAGE_SIZE * 2 + 17;
    log.appendMany(Array.from({ length: total }, (_, i) => message(i % 3 === 0 ? "inbound" : "outbound", i, { i })));
    const seen: number[] = [];
    for (const row of log.iterate(0)) {
      seen.push(row.seq);
      if (row.seq === 5) log.append(message("inbound", 9999, { late: true }));
    }
    expect(seen).toEqual(Array.from({ length: total + 1 }, (_, i) => i + 1));
    const inbound = [...log.iterate(100, "inbound")];
    expect(inbound.every((row) => row.direction === "inbound" && row.seq > 100)).toBe(true);
    expect(inbound.at(-1)?.content).toEqual({ late: true });
    expect([...log.iterate(total + 1)]).toEqual([]);
  });

  it("stores a 1 MB content row", () => {
    const log = open().messages;
    const big = { text: "é".repeat(512 * 1024), items: Array.from({ length: 1000 }, (_, i) => ({ i })) };
    log.append(message("outbound", 1, big));
    store?.close();
    const [row] = open().messages.list(0, 1);
    expect(row?.content).toEqual(big);
  });

  it("appendMany is all or nothing", () => {
    const log = open().messages;
    log.append(message("inbound", 1));
    const bad = { ...message("outbound", 2), direction: "sideways" as MessageDirection };
    expect(() => log.appendMany([message("outbound", 2), bad])).toThrow(expect.objectContaining({ code: Code.InvalidArgument }));
    expect(log.lastSeq()).toBe(1);
    expect(log.list(0, 10)).toHaveLength(1);
    expect(log.append(message("outbound", 3)).seq).toBe(2);
  });

  it("appendMany stores long runs (multi-row inserts) in order, and a bad row inside one stores none", () => {
    const log = open().messages;
    log.append(message("inbound", 1));
    const rows = Array.from({ length: 70 }, (_, i) => message("outbound", 1, { i, text: `e${i}` }));
    const stored = log.appendMany(rows);
    expect(stored.map((row) => row.seq)).toEqual(Array.from({ length: 70 }, (_, i) => i + 2));
    expect(log.list(1, 100)).toEqual(stored);
    expect(log.list(1, 100).map((row) => row.content)).toEqual(rows.map((row) => row.content));
    const bad = { ...message("outbound", 2), direction: "sideways" as MessageDirection };
    const batch = Array.from({ length: 64 }, (_, i) => (i === 40 ? bad : message("outbound", 2, { i })));
    expect(() => log.appendMany(batch)).toThrow(expect.objectContaining({ code: Code.InvalidArgument }));
    expect(log.lastSeq()).toBe(71);
    expect(log.append(message("outbound", 3)).seq).toBe(72);
  });
});
