import { describe, it, expect, beforeEach, afterEach } from "@jest/globals";
import { AgentStore } from "../../services/coordinator/store/agent-store.js";
import type { NewMessage } from "../../services/coordinator/store/message-log.js";
import type { ScheduleRow } from "../../services/coordinator/store/schedule-store.js";
import { makeTempDir, removeTempDir } from "./temp-dir.js";

const inbound = (text: string): NewMessage => ({ direction: "inbound", instanceId: "inst-1", turn: 0, messageType: "process_message", content: { text }, timestamp: 1 });
const schedule = (id: string, dueAt: number, kind: ScheduleRow["kind"] = "delay"): ScheduleRow => ({
  id,
  kind,
  spec: kind === "cron" ? "* * * * *" : "10",
  message: { text: id },
  dueAt,
  createdAt: 0,
  source: "agent",
});

describe("ScheduleStore (messages.db)", () => {
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

  it("keeps schedules soonest first across a reopen, and says when the next is due", () => {
    store = AgentStore.open({ dir });
    store.schedules.put(schedule("b", 200));
    store.schedules.put(schedule("a", 100, "cron"));
    expect(store.schedules.nextDueAt()).toBe(100);
    store.close();
    store = AgentStore.open({ dir });
    expect(store.schedules.list().map((s) => [s.id, s.kind, s.dueAt])).toEqual([
      ["a", "cron", 100],
      ["b", "delay", 200],
    ]);
    expect(store.schedules.due(150).map((s) => s.id)).toEqual(["a"]);
    expect(store.schedules.delete("b")).toBe(true);
    expect(store.schedules.delete("b")).toBe(false);
    expect(store.schedules.size()).toBe(1);
  });

  it("fires atomically: the inbound message and the schedule's move or deletion together", () => {
    store = AgentStore.open({ dir });
    store.schedules.put(schedule("once", 100));
    store.schedules.put(schedule("cron", 100, "cron"));
    const first = store.schedules.fire(schedule("once", 100), inbound("once"), undefined);
    const second = store.schedules.fire(schedule("cron", 100, "cron"), inbound("cron"), 160);
    expect([first.seq, second.seq]).toEqual([1, 2]);
    expect(store.schedules.list().map((s) => [s.id, s.dueAt])).toEqual([["cron", 160]]);
    expect(store.messages.list(0, 10).map((m) => m.content)).toEqual([{ text: "once" }, { text: "cron" }]);
  });

  it("a failed write leaves neither the message nor the move, and the seq unused", () => {
    store = AgentStore.open({ dir });
    const seqBefore = store.messages.lastSeq();
    expect(() =>
      store?.messages.appendWith(inbound("x"), () => {
        throw new Error("disk full");
      }),
    ).toThrow("disk full");
    expect(store.messages.lastSeq()).toBe(seqBefore);
    expect(store.messages.append(inbound("y")).seq).toBe(seqBefore + 1);
  });
});
