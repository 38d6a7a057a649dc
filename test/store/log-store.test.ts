import { describe, it, expect, beforeEach, afterEach } from "@jest/globals";
import { Code } from "@connectrpc/connect";
import { AgentStore } from "../../services/coordinator/store/agent-store.js";
import { LOG_FIELDS_MAX_BYTES, LOG_MESSAGE_MAX_BYTES, truncateUtf8 } from "../../services/coordinator/store/log-store.js";
import { makeTempDir, removeTempDir } from "./temp-dir.js";

describe("LogStore", () => {
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
  const open = (): AgentStore => {
    store?.close();
    return (store = AgentStore.open({ dir }));
  };

  it("appends and pages by id, across reopen", () => {
    let logs = open().logs;
    const before = Date.now();
    const first = logs.append({ level: "info", source: "stdout", message: "line 1", instanceId: "inst-1" });
    expect(first.id).toBe(1);
    expect(first.timestamp).toBeGreaterThanOrEqual(before);
    expect(first.fields).toBeUndefined();
    logs.append({ level: "warn", source: "stderr", message: "line 2", instanceId: "inst-1", timestamp: 42 });
    logs.appendMany(Array.from({ length: 8 }, (_, i) => ({ level: "debug" as const, source: "agent" as const, message: `m${i}`, instanceId: "inst-2", fields: { i } })));
    logs = open().logs;
    const last = logs.append({ level: "error", source: "platform", message: "crashed", instanceId: "inst-2", fields: { code: 1 } });
    expect(last.id).toBe(11);
    expect(logs.list(0, 2)).toEqual([first, { id: 2, timestamp: 42, level: "warn", source: "stderr", message: "line 2", instanceId: "inst-1" }]);
    expect(logs.list(2, 3).map((row) => [row.id, row.message, row.fields])).toEqual([
      [3, "m0", { i: 0 }],
      [4, "m1", { i: 1 }],
      [5, "m2", { i: 2 }],
    ]);
    expect(logs.list(10, 100)).toEqual([last]);
    expect(logs.list(11, 100)).toEqual([]);
    expect(() => logs.list(0, -5)).toThrow(expect.objectContaining({ code: Code.InvalidArgument }));
  });

  it("truncates long messages on a character boundary with a marker, and caps fields", () => {
    const logs = open().logs;
    const long = "€".repeat(LOG_MESSAGE_MAX_BYTES); // 3 bytes each
    const row = logs.append({ level: "info", source: "stdout", message: long, instanceId: "i", fields: { blob: "x".repeat(LOG_FIELDS_MAX_BYTES) } });
    expect(Buffer.byteLength(row.message)).toBeLessThanOrEqual(LOG_MESSAGE_MAX_BYTES);
    expect(row.message).toMatch(new RegExp(`^€+…\\[truncated, ${3 * LOG_MESSAGE_MAX_BYTES} bytes\\]$`));
    expect(row.fields).toEqual({ truncated: true, bytes: LOG_FIELDS_MAX_BYTES + 11 });
    expect(logs.list(0, 1)).toEqual([row]);

    const exact = "a".repeat(LOG_MESSAGE_MAX_BYTES);
    expect(logs.append({ level: "info", source: "stdout", message: exact, instanceId: "i" }).message).toBe(exact);
    expect(truncateUtf8("short", 10)).toBe("short");
    const cut = truncateUtf8("a😀b".repeat(20), 30);
    expect(cut).toBe("a😀…[truncated, 120 bytes]"); // 1 + 4 bytes kept, the next emoji would not fit
    expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(30);
  });

  it("rejects an unknown level", () => {
    const logs = open().logs;
    expect(() => logs.append({ level: "loud" as "info", source: "stdout", message: "x", instanceId: "i" })).toThrow(expect.objectContaining({ code: Code.InvalidArgument }));
    expect(logs.list(0, 10)).toEqual([]);
  });
});
