import { describe, it, expect, beforeEach, afterEach } from "@jest/globals";
import path from "node:path";
import Database from "better-sqlite3";
import { Code, ConnectError } from "@connectrpc/connect";
import type { JsonObject, JsonPatchOp } from "../../services/shared/json.js";
import { JsonPatchError } from "../../services/shared/json-patch.js";
import { AgentStore, STATE_DB, type AgentStoreOptions } from "../../services/coordinator/store/agent-store.js";
import { makeTempDir, removeTempDir } from "./temp-dir.js";

const meta = (turn: number) => ({ instanceId: "inst-1", turn, timestamp: 1_700_000_000_000 + turn });
const copy = (state: JsonObject): JsonObject => JSON.parse(JSON.stringify(state)) as JsonObject;

describe("StateStore", () => {
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
  const open = (options: Partial<AgentStoreOptions> = {}): AgentStore => {
    store?.close();
    return (store = AgentStore.open({ dir, ...options }));
  };

  it("starts a brand-new agent at version 0 with an empty state", () => {
    const state = open().state;
    expect(state.version()).toBe(0);
    expect(state.current()).toEqual({ version: 0, state: {} });
    expect(state.patchesSince(0)).toEqual([]);
  });

  it("applies, versions and reloads across reopen, with snapshots in between", () => {
    const small = { snapshotEveryVersions: 4, snapshotMinPatchRatio: 0 };
    let state = open(small).state;
    const seed = state.apply([{ op: "replace", path: "", value: { count: 0, items: [], tags: {} } }], meta(0));
    expect(seed).toEqual({ version: 1, ops: [{ op: "replace", path: "", value: { count: 0, items: [], tags: {} } }], ...meta(0) });
    const expected: JsonObject = { count: 0, items: [], tags: {} };
    const applyBoth = (ops: JsonPatchOp[], turn: number) => {
      const row = state.apply(ops, meta(turn));
      expect(row.version).toBe(turn + 1);
      return row;
    };
    for (let turn = 1; turn <= 10; turn++) {
      applyBoth(
        [
          { op: "replace", path: "/count", value: turn },
          { op: "add", path: "/items/-", value: { turn, text: `item ${turn}` } },
          { op: "add", path: `/tags/t~1${turn}`, value: turn % 2 === 0 },
        ],
        turn,
      );
      expected.count = turn;
      (expected.items as JsonObject[]).push({ turn, text: `item ${turn}` });
      (expected.tags as JsonObject)[`t/${turn}`] = turn % 2 === 0;
    }
    expect(state.current()).toEqual({ version: 11, state: expected });
    expect(state.info().snapshotVersion).toBe(8);

    state = open(small).state; // snapshot at 8 + patches 9..11
    expect(state.current()).toEqual({ version: 11, state: expected });
    expect(state.info()).toMatchObject({ snapshotVersion: 8, versionsSinceSnapshot: 3 });

    applyBoth(
      [
        { op: "remove", path: "/items/0" },
        { op: "move", from: "/tags/t~12", path: "/moved" },
      ],
      11,
    );
    (expected.items as JsonObject[]).shift();
    delete (expected.tags as JsonObject)["t/2"];
    expected.moved = true;
    state = open(small).state;
    expect(state.current()).toEqual({ version: 12, state: expected });

    state = open().state; // default thresholds: still loads the same
    expect(state.current()).toEqual({ version: 12, state: expected });
  });

  it("returns patches since a version and refuses pruned or future versions", () => {
    const state = open({ snapshotEveryVersions: 5, snapshotMinPatchRatio: 0 }).state;
    for (let turn = 1; turn <= 12; turn++) state.apply([{ op: "add", path: `/k${turn}`, value: turn }], meta(turn));
    // snapshots at 5 and 10: patches 1..5 pruned, 6..12 kept
    expect(state.info()).toMatchObject({ version: 12, snapshotVersion: 10, prunedThrough: 5 });
    const since = state.patchesSince(9);
    expect(since.map((row) => row.version)).toEqual([10, 11, 12]);
    expect(since[0]).toEqual({ version: 10, ops: [{ op: "add", path: "/k10", value: 10 }], ...meta(10) });
    expect(state.patchesSince(5).map((row) => row.version)).toEqual([6, 7, 8, 9, 10, 11, 12]);
    expect(state.patchesSince(5, 2).map((row) => row.version)).toEqual([6, 7]);
    expect(state.patchesSince(12)).toEqual([]);
    for (const version of [0, 4, 13]) {
      let error: unknown;
      try {
        state.patchesSince(version);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(ConnectError);
      expect((error as ConnectError).code).toBe(Code.OutOfRange);
      expect((error as ConnectError).message).toMatch(/fetch the full state/);
    }
    expect(() => state.patchesSince(-1)).toThrow(expect.objectContaining({ code: Code.InvalidArgument }));

    const reopened = open({ snapshotEveryVersions: 5, snapshotMinPatchRatio: 0 }).state;
    expect(reopened.info()).toMatchObject({ version: 12, snapshotVersion: 10, prunedThrough: 5 });
    expect(reopened.patchesSince(5)).toHaveLength(7);
    expect(() => reopened.patchesSince(4)).toThrow(expect.objectContaining({ code: Code.OutOfRange }));
  });

  it("a failing patch leaves the state and the database unchanged", () => {
    let state = open().state;
    state.apply([{ op: "replace", path: "", value: { list: [1, 2, 3], obj: { a: 1, b: { c: 2 } }, s: "x" } }], meta(0));
    const before = copy(state.current().state);
    const failing: JsonPatchOp[][] = [
      [
        { op: "add", path: "/list/1", value: 99 },
        { op: "remove", path: "/obj/a" },
        { op: "replace", path: "/s", value: "y" },
        { op: "move", from: "/obj/b", path: "/list/-" },
        { op: "copy", from: "/list", path: "/copied" },
        { op: "add", path: "/new", value: { deep: true } },
        { op: "test", path: "/s", value: "not y" },
      ],
      [
        { op: "remove", path: "/list/0" },
        { op: "remove", path: "/missing" },
      ],
      [
        { op: "replace", path: "", value: { other: 1 } },
        { op: "add", path: "/list/0", value: 1 },
      ],
      [
        { op: "add", path: "/x", value: 1 },
        { op: "add", path: "/list/7", value: 1 },
      ],
      [
        { op: "add", path: "/x", value: 1 },
        { op: "move", from: "/obj", path: "/obj/b/inside" },
      ],
      [
        { op: "add", path: "/list/-", value: 4 },
        { op: "replace", path: "", value: [] as unknown as JsonObject },
      ],
      [{ op: "add", path: "/x", value: 1 }, { op: "nope", path: "/x" } as unknown as JsonPatchOp],
    ];
    for (const ops of failing) {
      expect(() => state.apply(ops, meta(1))).toThrow(JsonPatchError);
      expect(state.current().version).toBe(1);
      expect(state.current().state).toEqual(before);
    }
    expect(state.patchesSince(1)).toEqual([]);
    // a good patch afterwards still applies on top of the intact state
    state.apply([{ op: "add", path: "/list/-", value: 4 }], meta(2));
    state = open().state;
    expect(state.current()).toEqual({ version: 2, state: { ...before, list: [1, 2, 3, 4] } });
  });

  it("refuses a patch that would take the state past maxStateBytes, copies included, and stores copies as the adds they are", () => {
    const limit = 64 * 1024;
    let state = open({ maxStateBytes: limit, snapshotEveryVersions: 1_000_000, snapshotEveryBytes: 1e12 }).state;
    state.apply([{ op: "add", path: "/x", value: "A".repeat(1024) }], meta(1));
    // A few bytes of `copy` doubling the root: the patch that would pass the limit is refused as a whole.
    const bomb: JsonPatchOp[] = Array.from({ length: 16 }, (_, i) => ({ op: "copy", from: "", path: `/c${i}` }));
    const before = copy(state.current().state);
    expect(() => state.apply(bomb, meta(2))).toThrow(/size limit/);
    expect(state.current()).toEqual({ version: 1, state: before });
    // Copies that fit are kept, and stored as adds: the log says how much the state grew.
    const row = state.apply([{ op: "copy", from: "/x", path: "/y" }], meta(3));
    expect(row.ops).toEqual([{ op: "copy", from: "/x", path: "/y" }]);
    expect(state.patchesSince(1)[0]?.ops).toEqual([{ op: "add", path: "/y", value: "A".repeat(1024) }]);
    // Copy after copy, patch after patch: refused once the state (estimated from what was stored) would pass it.
    let refused = 0;
    for (let i = 0; i < 100 && refused === 0; i++) {
      try {
        state.apply([{ op: "copy", from: "", path: `/d${i}` }], meta(4 + i));
      } catch (err) {
        expect(err).toBeInstanceOf(JsonPatchError);
        refused++;
      }
    }
    expect(refused).toBe(1);
    expect(JSON.stringify(state.current().state).length).toBeLessThanOrEqual(limit);
    // Plain adds count too, and the limit holds across a reopen (the stored patches are what it counts).
    expect(() => state.apply([{ op: "add", path: "/big", value: "B".repeat(limit) }], meta(200))).toThrow(/limit of 65536 bytes/);
    const grown = copy(state.current().state);
    state = open({ maxStateBytes: limit }).state;
    expect(state.current().state).toEqual(grown);
    expect(() => state.apply([{ op: "copy", from: "", path: "/again" }], meta(201))).toThrow(JsonPatchError);
  });

  it("stores a copy as what it copied when it ran, whatever later ops of the patch do to the original or the copy", () => {
    let state = open().state;
    state.apply([{ op: "add", path: "/obj", value: { k: 1, arr: [1, 2] } }], meta(1));
    state.apply(
      [
        { op: "add", path: "/l", value: [] },
        { op: "add", path: "/l/-", value: 1 },
        { op: "copy", from: "/obj", path: "/p" },
        { op: "remove", path: "/p/k" },
        { op: "add", path: "/p/arr/-", value: 3 },
        { op: "copy", from: "/l", path: "/m" },
        { op: "add", path: "/obj/k", value: 2 },
        { op: "test", path: "/p", value: { arr: [1, 2, 3] } },
      ],
      meta(2),
    );
    const live = copy(state.current().state);
    expect(live).toEqual({ obj: { k: 2, arr: [1, 2] }, l: [1], p: { arr: [1, 2, 3] }, m: [1] });
    state = open().state; // replayed from the stored patches
    expect(state.current().state).toEqual(live);
  });

  it("refuses patches that would nest the state deeper than it may, by path, copy or move", () => {
    const state = open().state;
    const under = (root: string, levels: number) => `/${root}${"/d".repeat(levels)}`;
    expect(() => state.apply([{ op: "add", path: under("a", 64), value: 1 }], meta(1))).toThrow(/deeper than 64 levels/);
    // Chains of 31-level values added at the deepest point a path may address: /d ends 94 levels deep, /e 63.
    let value: JsonObject = {};
    for (let i = 0; i < 30; i++) value = { d: value };
    state.apply([{ op: "add", path: "/d", value }], meta(2));
    state.apply([{ op: "add", path: under("d", 31), value }], meta(3));
    state.apply([{ op: "add", path: under("d", 62), value }], meta(4));
    state.apply([{ op: "add", path: "/e", value }], meta(5));
    state.apply([{ op: "add", path: under("e", 31), value }], meta(6));
    // Copied or moved 40 levels down, /d would nest 134 levels deep.
    expect(() => state.apply([{ op: "copy", from: "/d", path: `${under("e", 38)}/x` }], meta(7))).toThrow(/deeper than 128 levels/);
    expect(() => state.apply([{ op: "move", from: "/d", path: `${under("e", 38)}/x` }], meta(7))).toThrow(/deeper than 128 levels/);
    // 20 levels down it fits.
    state.apply([{ op: "copy", from: "/d", path: `${under("e", 18)}/x` }], meta(7));
    expect(state.version()).toBe(6);
  });

  it("counts in UTF-8 bytes, lets a state over its limit shrink, and measures it again once it did", () => {
    let state = open({ maxStateBytes: 16 * 1024 }).state;
    // 10,000 three-byte characters: 30 KB, past the limit, though 10,000 characters of text.
    expect(() => state.apply([{ op: "add", path: "/s", value: "中".repeat(10_000) }], meta(1))).toThrow(/limit of 16384 bytes/);
    state.apply([{ op: "add", path: "/s", value: "x".repeat(15 * 1024) }], meta(1));
    state.snapshot();
    // Over the limit (an agent from before it, a limit lowered): a removal still applies...
    state = open({ maxStateBytes: 8 * 1024 }).state;
    expect(() => state.apply([{ op: "add", path: "/t", value: 1 }], meta(2))).toThrow(JsonPatchError);
    state.apply([{ op: "remove", path: "/s" }], meta(2));
    // ...the next growing patch is refused while the estimate still counts the removed string, and has a
    // snapshot measure the state again, after which patches apply.
    expect(() => state.apply([{ op: "add", path: "/t", value: 1 }], meta(3))).toThrow(JsonPatchError);
    state.apply([{ op: "add", path: "/t", value: 1 }], meta(3));
    expect(state.current()).toEqual({ version: 3, state: { t: 1 } });
  });

  it("refuses a patch whose moves carry more than it may deeper down (each such move walks what it moves)", () => {
    const state = open({ maxStateBytes: 64 * 1024 }).state;
    state.apply([{ op: "add", path: "/a", value: { big: "y".repeat(20 * 1024) } }], meta(1));
    state.apply([{ op: "add", path: "/b", value: {} }], meta(2));
    const shuffle: JsonPatchOp[] = [];
    for (let i = 0; i < 10; i++) shuffle.push({ op: "move", from: "/a", path: "/b/a" }, { op: "move", from: "/b/a", path: "/a" });
    expect(() => state.apply(shuffle, meta(3))).toThrow(/carries more than it may/);
    // The same moves at the same depth walk nothing.
    state.apply(
      [
        { op: "move", from: "/a", path: "/c" },
        { op: "move", from: "/c", path: "/a" },
      ],
      meta(3),
    );
    expect(state.version()).toBe(3);
  });

  it("replays stored patches from before the depth limits", () => {
    let state = open().state;
    state.apply([{ op: "add", path: "/x", value: 1 }], meta(1));
    store?.close();
    store = undefined;
    // A patch stored by an earlier version of Podium: a path 70 levels deep, which apply() now refuses.
    let value: JsonObject = { leaf: true };
    for (let i = 0; i < 70; i++) value = { d: value };
    const db = new Database(path.join(dir, STATE_DB));
    db.prepare("INSERT INTO patches (version, ops, instance_id, turn, timestamp) VALUES (2, ?, 'inst-1', 2, 0)").run(
      JSON.stringify([
        { op: "add", path: "/deep", value },
        { op: "add", path: `/deep${"/d".repeat(70)}/more`, value: 1 },
      ]),
    );
    db.close();
    state = open().state;
    expect(state.version()).toBe(2);
    expect(JSON.stringify(state.current().state)).toContain('"more":1');
  });

  it("keeps counting toward the size limit when a snapshot fails", () => {
    const errors: unknown[] = [];
    const state = open({ maxStateBytes: 16 * 1024, snapshotEveryVersions: 1, snapshotMinPatchRatio: 0, onSnapshotError: (err) => errors.push(err) }).state;
    const db = new Database(path.join(dir, STATE_DB));
    db.exec("CREATE TRIGGER no_snapshots BEFORE INSERT ON snapshots BEGIN SELECT RAISE(ABORT, 'no snapshots'); END");
    db.close();
    let refused = 0;
    for (let i = 0; i < 40 && refused === 0; i++) {
      try {
        state.apply([{ op: "add", path: `/k${i}`, value: "x".repeat(1024) }], meta(i + 1));
      } catch (err) {
        expect(err).toBeInstanceOf(JsonPatchError);
        refused++;
      }
    }
    expect(errors.length).toBeGreaterThan(0);
    expect(refused).toBe(1);
    expect(JSON.stringify(state.current().state).length).toBeLessThanOrEqual(16 * 1024);
  });

  it("rolls the in-memory state back when the database write fails", () => {
    const state = open().state;
    state.apply([{ op: "add", path: "/a", value: 1 }], meta(1));
    // another writer takes version 2 behind the store's back
    const other = new Database(path.join(dir, STATE_DB));
    try {
      other.prepare("INSERT INTO patches (version, ops, instance_id, turn, timestamp) VALUES (2, '[]', 'x', 0, 0)").run();
    } finally {
      other.close();
    }
    expect(() =>
      state.apply(
        [
          { op: "add", path: "/b", value: 2 },
          { op: "replace", path: "/a", value: 3 },
        ],
        meta(2),
      ),
    ).toThrow(expect.objectContaining({ code: Code.Aborted }));
    expect(state.current()).toEqual({ version: 1, state: { a: 1 } });
  });

  it("a failed automatic snapshot is reported and does not fail apply()", () => {
    const errors: unknown[] = [];
    const state = open({ snapshotEveryVersions: 3, snapshotMinPatchRatio: 0, onSnapshotError: (err) => errors.push(err) }).state;
    expect(state.version()).toBe(0); // loaded before the other writer steps in
    const other = new Database(path.join(dir, STATE_DB));
    try {
      other.prepare("INSERT INTO snapshots (version, encoding, data, raw_bytes, timestamp) VALUES (3, 'json', x'7b7d', 2, 0)").run();
    } finally {
      other.close();
    }
    for (let turn = 1; turn <= 3; turn++) expect(state.apply([{ op: "add", path: `/k${turn}`, value: turn }], meta(turn)).version).toBe(turn);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: Code.Aborted });
    expect(state.info()).toMatchObject({ version: 3, snapshotVersion: 0, versionsSinceSnapshot: 0 });
    expect(state.patchesSince(0)).toHaveLength(3);
  });

  it("keeps its own copy of the ops' values", () => {
    const state = open().state;
    const value = { nested: { n: 1 } };
    const ops: JsonPatchOp[] = [{ op: "add", path: "/v", value }];
    const row = state.apply(ops, meta(1));
    value.nested.n = 2;
    expect(row.ops).toBe(ops);
    expect(state.current().state).toEqual({ v: { nested: { n: 1 } } });
    // values JSON cannot hold are stored and kept as JSON makes them, so memory equals a replay
    state.apply(
      [
        { op: "add", path: "/nan", value: Number.NaN },
        { op: "add", path: "/s", value: "plain" },
      ],
      meta(2),
    );
    expect(state.current().state).toEqual({ v: { nested: { n: 1 } }, nan: null, s: "plain" });
    expect(open().state.current().state).toEqual({ v: { nested: { n: 1 } }, nan: null, s: "plain" });
  });

  it("validates the patch metadata", () => {
    const state = open().state;
    expect(() => state.apply([], { instanceId: "i", turn: 1.5 })).toThrow(expect.objectContaining({ code: Code.InvalidArgument }));
    expect(() => state.apply([], { instanceId: "i", turn: 1, timestamp: 1.5 })).toThrow(ConnectError);
    expect(state.version()).toBe(0);
  });

  it("forces a snapshot with snapshot() and loads from it", () => {
    let state = open().state;
    for (let turn = 1; turn <= 3; turn++) state.apply([{ op: "add", path: `/k${turn}`, value: turn }], meta(turn));
    expect(state.info().snapshotVersion).toBe(0);
    state.snapshot();
    state.snapshot(); // nothing new: no-op
    expect(state.info()).toMatchObject({ snapshotVersion: 3, prunedThrough: 0, versionsSinceSnapshot: 0 });
    state = open().state;
    expect(state.info()).toMatchObject({ version: 3, snapshotVersion: 3, versionsSinceSnapshot: 0 });
    expect(state.current().state).toEqual({ k1: 1, k2: 2, k3: 3 });
    expect(state.patchesSince(0)).toHaveLength(3);
  });

  const bigConversation = () => {
    const text = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor ";
    return Array.from({ length: 140_000 }, (_, i) => ({
      id: `m-${i}-${(i * 2654435761) % 4294967296}`,
      role: i % 2 === 0 ? "user" : "assistant",
      text: text.repeat(4).slice(i % 50) + i,
      score: (i % 1000) / 7,
    }));
  };
  const chunkRows = () => {
    const db = new Database(path.join(dir, STATE_DB), { readonly: true });
    try {
      return {
        snapshots: db.prepare("SELECT version, encoding, length(data) AS inline, chunks FROM snapshots").all() as { version: number; encoding: string; inline: number; chunks: number }[],
        chunks: db.prepare("SELECT version, count(*) AS n, sum(length(data)) AS bytes FROM snapshot_chunks GROUP BY version").all() as { version: number; n: number; bytes: number }[],
      };
    } finally {
      db.close();
    }
  };
  const until = async (what: () => boolean) => {
    for (let i = 0; i < 500 && !what(); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(what()).toBe(true);
  };

  it("round-trips a 50 MB state across reopen, its snapshot built in the background and written in chunks", async () => {
    let state = open().state;
    state.apply([{ op: "replace", path: "", value: { conversation: bigConversation(), done: false } }], meta(1));
    // The snapshot of version 1 is being built off the main thread; patches go on meanwhile.
    expect(state.info().snapshotVersion).toBe(0);
    state.apply([{ op: "replace", path: "/done", value: true }], meta(2));
    const json = JSON.stringify(state.current().state);
    expect(json.length).toBeGreaterThan(50_000_000);
    await until(() => state.info().snapshotVersion === 1);
    expect(state.info()).toMatchObject({ version: 2, snapshotVersion: 1, snapshotRawBytes: json.length + 1, versionsSinceSnapshot: 1 }); // "false" at 1

    const rows = chunkRows();
    expect(rows.snapshots).toHaveLength(1);
    expect(rows.snapshots[0]).toMatchObject({ version: 1, encoding: "json+br", inline: 0 });
    expect(rows.chunks).toEqual([{ version: 1, n: rows.snapshots[0]?.chunks, bytes: expect.any(Number) }]);
    expect(rows.chunks[0]?.bytes).toBeLessThan(json.length / 3);

    state = open().state; // snapshot at 1 (its chunks), patch 2 replayed
    expect(state.info()).toMatchObject({ version: 2, snapshotVersion: 1, versionsSinceSnapshot: 1 });
    expect(JSON.stringify(state.current().state)).toBe(json);

    // The same load off the main thread (an agent's start): the state, and its JSON for `init`.
    state = open().state;
    const loaded = await state.loadInBackground();
    expect(loaded?.version).toBe(2);
    expect(Buffer.from(loaded?.json ?? new Uint8Array()).toString()).toBe(json);
    expect(state.info()).toMatchObject({ version: 2, snapshotVersion: 1, versionsSinceSnapshot: 1, prunedThrough: 0 });
    expect(JSON.stringify(state.current().state)).toBe(json);
    expect(await state.loadInBackground()).toBeUndefined(); // loaded already
  }, 120_000);

  it("tells its stored versions without loading, and drops patches after a version only before loading (restore reconciliation)", () => {
    let state = open({ snapshotEveryVersions: 3, snapshotMinPatchRatio: 0 }).state;
    for (let turn = 1; turn <= 5; turn++) state.apply([{ op: "add", path: `/k${turn}`, value: turn }], meta(turn));
    state = open().state;
    expect([state.storedVersion(), state.newestSnapshotVersion()]).toEqual([5, 3]);
    expect(state.dropPatchesAfter(4)).toBe(1);
    expect(state.current()).toEqual({ version: 4, state: { k1: 1, k2: 2, k3: 3, k4: 4 } });
    expect(() => state.dropPatchesAfter(3)).toThrow(expect.objectContaining({ code: Code.FailedPrecondition }));
  });

  it("loads in the background only a large state; a broken patch chain is DataLoss there too; applies go on after it", async () => {
    let state = open().state;
    state.apply([{ op: "add", path: "/small", value: 1 }], meta(1));
    state = open().state;
    expect(await state.loadInBackground()).toBeUndefined(); // below backgroundSnapshotBytes: current() loads it
    expect(state.current()).toEqual({ version: 1, state: { small: 1 } });

    const large = { backgroundSnapshotBytes: 1, snapshotEveryVersions: 1000 };
    state = open(large).state;
    for (let turn = 2; turn <= 4; turn++) state.apply([{ op: "add", path: `/k${turn}`, value: "v".repeat(turn) }], meta(turn));
    state = open(large).state;
    expect((await state.loadInBackground())?.version).toBe(4);
    state.apply([{ op: "add", path: "/k5", value: 5 }], meta(5));
    state = open(large).state;
    expect(state.current()).toEqual({ version: 5, state: { small: 1, k2: "vv", k3: "vvv", k4: "vvvv", k5: 5 } });

    store?.close();
    const other = new Database(path.join(dir, STATE_DB));
    try {
      other.prepare("DELETE FROM patches WHERE version = 3").run();
    } finally {
      other.close();
    }
    state = open(large).state;
    await expect(state.loadInBackground()).rejects.toMatchObject({ code: Code.DataLoss });
  }, 60_000);

  it("keeps a large state's snapshot synchronous with backgroundSnapshotBytes: Infinity", () => {
    const state = open({ backgroundSnapshotBytes: Infinity }).state;
    state.apply([{ op: "replace", path: "", value: { conversation: bigConversation().slice(0, 20_000) } }], meta(1));
    expect(state.info().snapshotVersion).toBe(1);
    expect(chunkRows().snapshots[0]).toMatchObject({ version: 1, chunks: 0 });
  });

  it("a store closed while its background snapshot is built leaves no chunk behind, and the next one replaces the old", async () => {
    let state = open({ snapshotEveryVersions: 2, snapshotMinPatchRatio: 0, backgroundSnapshotBytes: 1 }).state;
    state.apply([{ op: "add", path: "/a", value: "x".repeat(200_000) }], meta(1));
    state.apply([{ op: "add", path: "/b", value: 1 }], meta(2)); // snapshot of 2 starts
    state = open({ snapshotEveryVersions: 2, snapshotMinPatchRatio: 0, backgroundSnapshotBytes: 1 }).state; // closed under it
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(state.info()).toMatchObject({ version: 2, snapshotVersion: 0 });
    await until(() => chunkRows().chunks.length === 0); // what the closed one wrote is removed after the load
    state.apply([{ op: "add", path: "/c", value: 2 }], meta(3)); // snapshot of 3
    await until(() => state.info().snapshotVersion === 3);
    state.apply([{ op: "add", path: "/d", value: 3 }], meta(4));
    state.apply([{ op: "add", path: "/e", value: 4 }], meta(5)); // snapshot of 5 replaces 3
    await until(() => state.info().snapshotVersion === 5 && chunkRows().chunks.length === 1);
    const rows = chunkRows();
    expect(rows.snapshots.map((r) => r.version)).toEqual([5]);
    expect(rows.chunks.map((r) => r.version)).toEqual([5]);
    expect(state.info()).toMatchObject({ prunedThrough: 3 });
    const reopened = open().state;
    expect(reopened.current()).toEqual({ version: 5, state: { a: "x".repeat(200_000), b: 1, c: 2, d: 3, e: 4 } });
  }, 120_000);

  it("loads the state on first use, and reports a broken patch chain as DataLoss", () => {
    let opened = open();
    for (let turn = 1; turn <= 3; turn++) opened.state.apply([{ op: "add", path: `/k${turn}`, value: turn }], meta(turn));
    opened.messages.append({ direction: "inbound", instanceId: "inst-1", turn: 1, messageType: "message", content: { a: 1 }, timestamp: 1 });
    opened.close();
    const other = new Database(path.join(dir, STATE_DB));
    try {
      other.prepare("DELETE FROM patches WHERE version = 2").run();
    } finally {
      other.close();
    }
    opened = open(); // does not touch the state yet
    expect(opened.messages.list(0, 10)).toHaveLength(1);
    for (let i = 0; i < 2; i++) {
      expect(() => opened.state.current()).toThrow(expect.objectContaining({ code: Code.DataLoss }));
    }
    expect(() => opened.state.apply([], meta(4))).toThrow(expect.objectContaining({ code: Code.DataLoss }));
  });

  it("throws FailedPrecondition after close", () => {
    const opened = open();
    opened.close();
    expect(() => opened.state.apply([], meta(1))).toThrow(expect.objectContaining({ code: Code.FailedPrecondition }));
    expect(() => opened.state.current()).toThrow(expect.objectContaining({ code: Code.FailedPrecondition }));
    expect(() => opened.messages.lastSeq()).toThrow(expect.objectContaining({ code: Code.FailedPrecondition }));
    expect(() => opened.messages.list(0, 1)).toThrow(expect.objectContaining({ code: Code.FailedPrecondition }));
    expect(() => opened.logs.list(0, 1)).toThrow(expect.objectContaining({ code: Code.FailedPrecondition }));
  });

  describe("stateAt", () => {
    const counterTo = (state: AgentStore["state"], n: number) => {
      for (let i = 1; i <= n; i++) state.apply([{ op: "add", path: `/k${i}`, value: i }], meta(i));
    };
    const upTo = (n: number): JsonObject => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i + 1}`, i + 1]));

    it("rebuilds every version while nothing was pruned, with the patch that made it", async () => {
      const state = open().state;
      counterTo(state, 6);
      for (let v = 0; v <= 6; v++) {
        const at = await state.stateAt(v);
        expect(at.version).toBe(v);
        expect(at.state).toEqual(upTo(v));
        expect(at.patch?.ops).toEqual(v === 0 ? undefined : [{ op: "add", path: `/k${v}`, value: v }]);
      }
      await expect(state.stateAt(7)).rejects.toMatchObject({ code: Code.OutOfRange });
      await expect(state.stateAt(-1)).rejects.toMatchObject({ code: Code.InvalidArgument });
      expect(state.current().state).toEqual(upTo(6)); // the live state was not touched
    });

    it("keeps history from the newest snapshot on once older patches are pruned, and says so for older versions", async () => {
      const state = open({ snapshotEveryVersions: 4, snapshotMinPatchRatio: 0 }).state;
      counterTo(state, 10); // snapshots at 4 and 8; patches up to 4 pruned
      expect(state.info()).toMatchObject({ snapshotVersion: 8, prunedThrough: 4 });
      for (const v of [8, 9, 10]) expect((await state.stateAt(v)).state).toEqual(upTo(v));
      expect((await state.stateAt(8)).patch?.version).toBe(8);
      const error = await state.stateAt(6).catch((err: unknown) => err);
      expect(error).toMatchObject({ code: Code.FailedPrecondition });
      expect(String((error as ConnectError).message)).toMatch(/before 8 are no longer kept/);
    });

    it("rebuilds a large state on the snapshot thread, from a chunked snapshot", async () => {
      const options = { snapshotEveryVersions: 3, snapshotMinPatchRatio: 0, backgroundSnapshotBytes: 1 };
      const state = open(options).state;
      counterTo(state, 3);
      for (let i = 0; i < 200 && state.info().snapshotVersion < 3; i++) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(state.info().snapshotVersion).toBe(3);
      state.apply([{ op: "add", path: "/k4", value: 4 }], meta(4));
      state.apply([{ op: "add", path: "/k5", value: 5 }], meta(5));
      expect((await state.stateAt(4)).state).toEqual(upTo(4));
      expect((await state.stateAt(3)).state).toEqual(upTo(3));
    });
  });
});
