/**
 * Chronicle capture cost. A 10,000-file workspace (20 x 5 directories x 100 text files of 0.3-3 KB);
 * each "turn" rewrites 10 random files and captures. Reported:
 * - capture p50/p95 for the 10-changed turns, and for turns where nothing changed;
 * - a bare recursive readdir + lstat walk of the same tree in the same run (p50/p95) and the ratio;
 * - the first (full) capture;
 * - storage: database size vs the raw size of every version stored;
 * - how many timed captures walked the whole tree (with the watcher: only periodic/fallback scans).
 * Run: node --import tsx bench/chronicle-bench.ts [--no-watch]   (--no-watch: full scan every capture)
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { Chronicle } from "../services/coordinator/chronicle/chronicle.js";
import { prng } from "./bench-util.js";

const TOP_DIRS = 20;
const SUB_DIRS = 5;
const FILES_PER_DIR = 100;
const CHANGED_PER_TURN = 10;
const TURNS = 30;
const WORDS = ["const", "value", "return", "function", "import", "export", "agent", "state", "await", "if", "else", "=>", "{", "}", ";"];

function text(random: () => number, bytes: number): string {
  const lines: string[] = [];
  let length = 0;
  while (length < bytes) {
    const words = Array.from({ length: 4 + Math.floor(random() * 8) }, () => WORDS[Math.floor(random() * WORDS.length)]);
    const line = `${"  ".repeat(Math.floor(random() * 4))}${words.join(" ")} ${Math.floor(random() * 1e6)}`;
    lines.push(line);
    length += line.length + 1;
  }
  return `${lines.join("\n")}\n`;
}

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] ?? Number.NaN;
}

function timeMs(fn: () => void): number {
  const start = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** The baseline: the same readdir(withFileTypes) + lstat-per-file walk, with no bookkeeping. */
export function bareStatWalk(root: string): number {
  let count = 0;
  const stack = [root];
  for (let dir = stack.pop(); dir !== undefined; dir = stack.pop()) {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const abs = `${dir}/${entry.name}`;
      if (entry.isDirectory()) stack.push(abs);
      else if (entry.isFile() && fs.lstatSync(abs).isFile()) count++;
    }
  }
  return count;
}

const round = (n: number) => Math.round(n * 100) / 100;

export async function runChronicleBench(watch = true): Promise<Record<string, number>> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "podium-chronicle-bench-"));
  const workspace = path.join(root, "ws");
  const dbPath = path.join(root, "chronicle.db");
  const random = prng(42);
  const files: string[] = [];
  for (let t = 0; t < TOP_DIRS; t++) {
    for (let s = 0; s < SUB_DIRS; s++) {
      const dir = path.join(workspace, `pkg${t}`, `mod${s}`);
      fs.mkdirSync(dir, { recursive: true });
      for (let f = 0; f < FILES_PER_DIR; f++) {
        const file = path.join(dir, `file${f}.ts`);
        fs.writeFileSync(file, text(random, 300 + Math.floor(random() * 2700)));
        files.push(file);
      }
    }
  }
  let chronicle = Chronicle.open({ workspaceDir: workspace, dbPath, watch });
  try {
    const initialMs = timeMs(() => chronicle.capture());
    // Settle: files written just now are "racy" and get re-hashed once.
    chronicle.capture();
    const captureSamples: number[] = [];
    const idleSamples: number[] = [];
    const walkSamples: number[] = [];
    let walked = 0;
    let fullScans = 0;
    for (let turn = 0; turn < TURNS; turn++) {
      for (let i = 0; i < CHANGED_PER_TURN; i++) {
        const file = files[Math.floor(random() * files.length)];
        if (file) fs.appendFileSync(file, text(random, 80));
      }
      let changed = 0;
      captureSamples.push(timeMs(() => (changed = chronicle.capture()?.files.length ?? 0)));
      if (chronicle.lastFullScanReason !== undefined) fullScans++;
      if (changed === 0) throw new Error(`turn ${turn}: capture saw no change`);
      walkSamples.push(timeMs(() => (walked = bareStatWalk(workspace))));
      idleSamples.push(timeMs(() => chronicle.capture()));
      if (chronicle.lastFullScanReason !== undefined) fullScans++;
    }
    if (walked !== files.length) throw new Error(`walk saw ${walked} files, expected ${files.length}`);
    const usage = chronicle.usage();
    chronicle.close();
    // Reopen cost (loads the manifest) and the database size after the WAL is folded in by close().
    const reopenMs = timeMs(() => (chronicle = Chronicle.open({ workspaceDir: workspace, dbPath, watch })));
    chronicle.close();
    const dbBytes = fs.statSync(dbPath).size;
    const captureP50 = percentile(captureSamples, 50);
    const walkP50 = percentile(walkSamples, 50);
    return {
      watch: watch ? 1 : 0,
      fullScanCaptures: fullScans,
      files: files.length,
      changedPerTurn: CHANGED_PER_TURN,
      turns: TURNS,
      initialCaptureMs: round(initialMs),
      captureP50Ms: round(captureP50),
      captureP95Ms: round(percentile(captureSamples, 95)),
      idleCaptureP50Ms: round(percentile(idleSamples, 50)),
      bareWalkP50Ms: round(walkP50),
      bareWalkP95Ms: round(percentile(walkSamples, 95)),
      captureToWalkRatio: round(captureP50 / walkP50),
      reopenMs: round(reopenMs),
      rawVersionBytes: usage.rawVersionBytes,
      blobStoredBytes: usage.blobStoredBytes,
      dbBytes,
      storageRatio: round(dbBytes / usage.rawVersionBytes),
      blobRatio: round(usage.blobStoredBytes / usage.rawVersionBytes),
    };
  } finally {
    chronicle.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runChronicleBench(!process.argv.includes("--no-watch")).then(
    (result) => {
      for (const [key, value] of Object.entries(result)) console.log(`${key.padEnd(20)} ${value}`);
    },
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
