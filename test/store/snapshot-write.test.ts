import { describe, it, expect, beforeEach, afterEach } from "@jest/globals";
import path from "node:path";
import Database from "better-sqlite3";
import { AgentStore, STATE_DB } from "../../services/coordinator/store/agent-store.js";
import { dropOldChunks, writeSnapshot } from "../../services/coordinator/store/snapshot-write.js";
import { decodeState } from "../../services/coordinator/store/snapshot-build.js";
import { makeTempDir, removeTempDir } from "./temp-dir.js";

// The snapshot thread's writes, run here on the test's thread: chunks through a connection of its own.
describe("snapshot-write", () => {
  let dir: string;
  let store: AgentStore;
  beforeEach(() => {
    dir = makeTempDir();
    store = AgentStore.open({ dir, snapshotEveryVersions: 1000 });
    for (let turn = 1; turn <= 3; turn++) store.state.apply([{ op: "add", path: `/k${turn}`, value: "v".repeat(300) + turn }], { instanceId: "i", turn });
  });
  afterEach(() => {
    store.close();
    removeTempDir(dir);
  });
  const file = () => path.join(dir, STATE_DB);
  const chunks = () => {
    const db = new Database(file(), { readonly: true });
    try {
      return db.prepare<[], { version: number; seq: number; data: Buffer }>("SELECT version, seq, data FROM snapshot_chunks ORDER BY version, seq").all();
    } finally {
      db.close();
    }
  };

  it("builds the version asked for from the stored rows and writes it in chunks", () => {
    const written = writeSnapshot({ file: file(), previous: 0, through: 2, compress: false, chunkBytes: 100, cancel: new Int32Array(1) });
    expect(written).toMatchObject({ version: 2, encoding: "json", chunks: Math.ceil((written?.rawBytes ?? 0) / 100) });
    const rows = chunks();
    expect(rows.map((row) => row.seq)).toEqual(Array.from({ length: written?.chunks ?? 0 }, (_, seq) => seq));
    const state = decodeState({ version: 2, encoding: "json", parts: rows.map((row) => row.data) });
    expect(state).toEqual({ k1: `${"v".repeat(300)}1`, k2: `${"v".repeat(300)}2` });
  });

  it("writes no chunk once cancelled, and drops the chunks of snapshots that are gone", () => {
    const cancel = new Int32Array(new SharedArrayBuffer(4));
    Atomics.store(cancel, 0, 1);
    expect(writeSnapshot({ file: file(), previous: 0, through: 3, compress: false, chunkBytes: 100, cancel })).toBeUndefined();
    expect(chunks()).toEqual([]);
    Atomics.store(cancel, 0, 0);
    writeSnapshot({ file: file(), previous: 0, through: 3, compress: false, chunkBytes: 100, cancel });
    expect(dropOldChunks({ file: file(), keep: 3, cancel })).toBe(0); // a snapshot being written keeps its chunks
    expect(dropOldChunks({ file: file(), keep: 0, cancel })).toBeGreaterThan(0); // no row: a crash's leftovers
    expect(chunks()).toEqual([]);
  });
});
