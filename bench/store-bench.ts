/**
 * Per-agent storage (services/coordinator/store). Reported, all measured in this run:
 * - baselineInsertsPerSec: raw better-sqlite3 single-row autocommit inserts into a plain WAL table
 *   (WAL + synchronous=NORMAL, like the store);
 * - deltasPerSec: StateStore.apply() calls (one small patch each, default snapshot policy), and
 *   deltasVsBaseline = deltasPerSec / baselineInsertsPerSec; deltasPerSec50MB: the same on a 50 MB state
 *   (after 2,000 warm-up deltas);
 * - messageAppendsPerSec (single append() calls) and messageReplayPerSec (iterate() over 100k rows
 *   after reopening);
 * - a 50 MB agent-like state: snapshot size and write time, brotli (what the store does) vs raw
 *   JSON, zlib deflate level 1 for comparison, and the time to open the agent from each;
 * - open50MBMs vs open50MBPlus10kDeltasMs: opening with the snapshot only, and with 10,000 deltas
 *   after it (default options; the snapshot ratio guard keeps them as deltas);
 * - the longest event-loop stall of an automatic snapshot of the 50 MB state, on the main thread
 *   (backgroundSnapshotBytes: Infinity) and in the background (the default), and their ratio.
 * Run: node --import tsx bench/store-bench.ts
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { pathToFileURL } from "node:url";
import Database from "better-sqlite3";
import type { JsonObject } from "../services/shared/json.js";
import { AgentStore, STATE_DB, type AgentStoreOptions } from "../services/coordinator/store/agent-store.js";
import type { NewMessage } from "../services/coordinator/store/message-log.js";
import { prng } from "./bench-util.js";

const DELTAS = 50_000;
const BASELINE_INSERTS = 50_000;
const MESSAGES = 100_000;
const SINGLE_APPENDS = 20_000;
const BIG_STATE_BYTES = 50 * 1024 * 1024;
const DELTAS_AFTER_SNAPSHOT = 10_000;
const WARMUP_DELTAS = 2000;
const OPEN_RUNS = 3;

/** An agent-like state: a conversation of messages with Zipf-ish words, ids, numbers, tool calls. */
function bigState(bytes: number): JsonObject {
  const random = prng(7);
  const syllables = ["ka", "to", "re", "mi", "an", "el", "or", "th", "in", "st", "ou", "ing", "er", "al", "co", "de", "pro", "ve"];
  const vocabulary = Array.from({ length: 8000 }, (_, i) => {
    let word = "";
    for (let n = 1 + (i % 4); n > 0; n--) word += syllables[Math.floor(random() * syllables.length)];
    return word;
  });
  const word = () => vocabulary[Math.floor(random() * random() * vocabulary.length)] as string;
  const conversation: JsonObject[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const text = Array.from({ length: 20 + Math.floor(random() * 80) }, word).join(" ");
    const message: JsonObject = {
      id: `msg_${Math.floor(random() * 2 ** 52).toString(36)}`,
      role: i % 2 === 0 ? "user" : "assistant",
      text,
      createdAt: 1_700_000_000_000 + i * 1000 + Math.floor(random() * 1000),
      tokens: Math.floor(random() * 4000),
      tool: i % 5 === 0 ? { name: word(), args: { path: `/src/${word()}/${word()}.ts`, line: Math.floor(random() * 500) } } : null,
    };
    conversation.push(message);
    size += text.length + 150;
  }
  return { conversation, settings: { model: "some-model", temperature: 0.2 }, counter: 0 };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

const round = (value: number, digits = 0): number => Number(value.toFixed(digits));
const perSec = (count: number, ms: number): number => round((count / ms) * 1000);

function timeOpen(options: AgentStoreOptions): number {
  const runs: number[] = [];
  for (let i = 0; i < OPEN_RUNS; i++) {
    const start = performance.now();
    const store = AgentStore.open(options);
    store.state.version(); // the state loads on first use
    runs.push(performance.now() - start);
    store.close();
  }
  return round(median(runs), 1);
}

function baselineInserts(dir: string): number {
  const db = new Database(path.join(dir, "baseline.db"));
  try {
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = NORMAL");
    db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL, who TEXT NOT NULL, turn INTEGER NOT NULL, ts INTEGER NOT NULL)");
    const insert = db.prepare("INSERT INTO t VALUES (?, ?, ?, ?, ?)");
    const run = (from: number, count: number) => {
      for (let i = from; i < from + count; i++) insert.run(i, `[{"op":"replace","path":"/counter","value":${i}}]`, "inst-1", i, Date.now());
    };
    run(1, WARMUP_DELTAS);
    const start = performance.now();
    run(1 + WARMUP_DELTAS, BASELINE_INSERTS);
    return perSec(BASELINE_INSERTS, performance.now() - start);
  } finally {
    db.close();
  }
}

function applyDeltas(store: AgentStore, count: number, firstTurn: number): number {
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    const turn = firstTurn + i;
    store.state.apply(
      [
        { op: "replace", path: "/counter", value: turn },
        { op: "add", path: `/scratch/k${turn % 256}`, value: `value ${turn}` },
      ],
      { instanceId: "inst-1", turn },
    );
  }
  return perSec(count, performance.now() - start);
}

function messageBench(dir: string): Record<string, number> {
  const message = (i: number): NewMessage => ({
    direction: i % 2 === 0 ? "inbound" : "outbound",
    instanceId: "inst-1",
    turn: i >> 1,
    messageType: i % 2 === 0 ? "message" : "stream_delta",
    content: { text: `chunk ${i} of the reply with some words in it to look like a streamed delta`, index: i, final: false },
    timestamp: 1_700_000_000_000 + i,
  });
  let store = AgentStore.open({ dir });
  const start = performance.now();
  for (let i = 0; i < SINGLE_APPENDS; i++) store.messages.append(message(i));
  const messageAppendsPerSec = perSec(SINGLE_APPENDS, performance.now() - start);
  for (let i = SINGLE_APPENDS; i < MESSAGES; i += 1000) {
    store.messages.appendMany(Array.from({ length: Math.min(1000, MESSAGES - i) }, (_, k) => message(i + k)));
  }
  store.close();
  store = AgentStore.open({ dir });
  try {
    const replayStart = performance.now();
    let count = 0;
    for (const row of store.messages.iterate(0)) if (row.content !== undefined) count++;
    const ms = performance.now() - replayStart;
    if (count !== MESSAGES) throw new Error(`replayed ${count} of ${MESSAGES} messages`);
    return { messageAppendsPerSec, messageReplayPerSec: perSec(count, ms) };
  } finally {
    store.close();
  }
}

function snapshotBytes(dir: string): number {
  const db = new Database(path.join(dir, STATE_DB), { readonly: true });
  try {
    return db.prepare<[], number>("SELECT length(data) FROM snapshots ORDER BY version DESC LIMIT 1").pluck().get() ?? 0;
  } finally {
    db.close();
  }
}

/** Stores the 50 MB state as one patch, then times an explicit snapshot; returns numbers + dir. */
function bigStateAgent(root: string, state: JsonObject, compress: boolean): { dir: string; writeMs: number; bytes: number; openMs: number } {
  const dir = path.join(root, "agents", compress ? "big-br" : "big-raw");
  const options = { dir, compressSnapshots: compress, snapshotEveryVersions: Number.MAX_SAFE_INTEGER, snapshotEveryBytes: Number.MAX_SAFE_INTEGER };
  const store = AgentStore.open(options);
  try {
    store.state.apply([{ op: "replace", path: "", value: state }], { instanceId: "inst-1", turn: 0 });
    const start = performance.now();
    store.state.snapshot();
    const writeMs = round(performance.now() - start, 1);
    store.close();
    return { dir, writeMs, bytes: snapshotBytes(dir), openMs: timeOpen({ dir }) };
  } finally {
    store.close();
  }
}

/**
 * An automatic snapshot of the 50 MB state, triggered by one small delta: how long the event loop is
 * blocked (the apply() call itself, then the longest gap between 2 ms timer ticks until the snapshot is
 * stored), synchronous (on the main thread, as before) or in the background (the snapshot thread).
 */
async function snapshotStall(dir: string, background: boolean): Promise<{ applyMs: number; longestStallMs: number; doneMs: number }> {
  const store = AgentStore.open({ dir, snapshotEveryVersions: 1, snapshotMinPatchRatio: 0, ...(background ? {} : { backgroundSnapshotBytes: Infinity }) });
  try {
    const before = store.state.info().snapshotVersion; // loads the state
    const start = performance.now();
    store.state.apply([{ op: "replace", path: "/counter", value: store.state.version() }], { instanceId: "inst-1", turn: 1 });
    const applyMs = performance.now() - start;
    let longestStallMs = applyMs;
    for (let last = performance.now(); store.state.info().snapshotVersion === before; ) {
      await new Promise((resolve) => setTimeout(resolve, 2));
      const now = performance.now();
      longestStallMs = Math.max(longestStallMs, now - last - 2);
      last = now;
    }
    return { applyMs: round(applyMs, 1), longestStallMs: round(longestStallMs, 1), doneMs: round(performance.now() - start, 1) };
  } finally {
    store.close();
  }
}

export async function runStoreBench(): Promise<Record<string, number>> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "podium-store-bench-"));
  try {
    const baselineInsertsPerSec = baselineInserts(root);

    const small = AgentStore.open({ dir: path.join(root, "agents", "small") });
    let deltasPerSec: number;
    try {
      small.state.apply([{ op: "replace", path: "", value: { counter: 0, scratch: {} } }], { instanceId: "inst-1", turn: 0 });
      applyDeltas(small, WARMUP_DELTAS, 1);
      deltasPerSec = applyDeltas(small, DELTAS, 1 + WARMUP_DELTAS);
    } finally {
      small.close();
    }

    const messages = messageBench(path.join(root, "agents", "messages"));

    const state = bigState(BIG_STATE_BYTES);
    const json = JSON.stringify(state);
    const rawBytes = Buffer.byteLength(json);
    let start = performance.now();
    const deflated = zlib.deflateSync(json, { level: 1 });
    const deflateMs = round(performance.now() - start, 1);
    start = performance.now();
    zlib.inflateSync(deflated);
    const inflateMs = round(performance.now() - start, 1);

    const raw = bigStateAgent(root, state, false);
    const brotli = bigStateAgent(root, state, true);

    // 10,000 small deltas after the 50 MB snapshot, default options.
    const big = AgentStore.open({ dir: brotli.dir });
    let deltasPerSec50MB: number;
    let snapshotsDuringDeltas: number;
    try {
      const snapshotBefore = big.state.info().snapshotVersion;
      big.state.apply([{ op: "add", path: "/scratch", value: {} }], { instanceId: "inst-1", turn: 1 });
      // The first deltas after open pay for collecting the load's garbage (one ~0.2 s mark-compact).
      applyDeltas(big, WARMUP_DELTAS, 2);
      deltasPerSec50MB = applyDeltas(big, DELTAS_AFTER_SNAPSHOT - WARMUP_DELTAS - 1, 2 + WARMUP_DELTAS);
      snapshotsDuringDeltas = big.state.info().snapshotVersion === snapshotBefore ? 0 : 1;
    } finally {
      big.close();
    }
    const open50MBPlus10kDeltasMs = timeOpen({ dir: brotli.dir });
    const syncSnapshot = await snapshotStall(raw.dir, false);
    // The first builds on the snapshot stored inline (read in one piece); the next on its own chunks.
    const firstBackgroundSnapshot = await snapshotStall(raw.dir, true);
    const backgroundSnapshot = await snapshotStall(raw.dir, true);

    return {
      baselineInsertsPerSec,
      deltasPerSec,
      deltasVsBaseline: round(deltasPerSec / baselineInsertsPerSec, 2),
      deltasPerSec50MB,
      ...messages,
      stateRawMB: round(rawBytes / 1e6, 1),
      snapshotBrotliMB: round(brotli.bytes / 1e6, 1),
      snapshotDeflate1MB: round(deflated.length / 1e6, 1),
      deflate1Ms: deflateMs,
      inflate1Ms: inflateMs,
      snapshotWriteBrotliMs: brotli.writeMs,
      snapshotWriteRawMs: raw.writeMs,
      openFromRawSnapshotMs: raw.openMs,
      open50MBMs: brotli.openMs,
      open50MBPlus10kDeltasMs,
      snapshotsDuring10kDeltas: snapshotsDuringDeltas,
      snapshot50MBSyncStallMs: syncSnapshot.longestStallMs,
      snapshot50MBBackgroundFromInlineStallMs: firstBackgroundSnapshot.longestStallMs,
      snapshot50MBBackgroundStallMs: backgroundSnapshot.longestStallMs,
      snapshot50MBBackgroundDoneMs: backgroundSnapshot.doneMs,
      snapshotStallRatio: round(backgroundSnapshot.longestStallMs / syncSnapshot.longestStallMs, 3),
    };
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runStoreBench().then(
    (result) => {
      for (const [key, value] of Object.entries(result)) console.log(`${key.padEnd(40)} ${value}`);
    },
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
