/**
 * Turns the workspace on disk into (at most) one new iteration.
 *
 * 1. Scan: readdir + lstat every regular file (no reads).
 * 2. Candidates: files whose (size, mtime, ctime, inode) differ from the manifest, new files, and files
 *    marked racy. Everything else is unchanged without being opened.
 * 3. Open each candidate safely (workspace-io.ts), hash and store it (blob-store.ts). Same content as
 *    recorded -> only the stat fingerprint is refreshed; different -> "created" / "modified".
 * 4. Recorded files missing from the scan -> "deleted" (except below directories or files that could not
 *    be read: those keep their last version and are reported in `skipped`).
 * 5. One transaction writes the iteration, its versions, the blobs and the manifest; the in-memory manifest
 *    follows only after the commit. No change -> no iteration (undefined).
 */
import fs from "node:fs";
import { Code, ConnectError } from "@connectrpc/connect";
import type { BlobStore, StoredBlob } from "./blob-store.js";
import type { Db } from "./chronicle-db.js";
import type { CompiledChronicleOptions } from "./chronicle-options.js";
import type { CaptureResult, ChangeKind, FileChange, SkippedPath } from "./chronicle-types.js";
import type { Manifest, ManifestEntry, ManifestUpdate } from "./manifest.js";
import type { VersionLog } from "./version-log.js";
import { errnoCode, openForCapture } from "./workspace-io.js";
import { scanWorkspace, type ScanResult } from "./workspace-scanner.js";

/**
 * A file whose mtime is within this window of a capture may be rewritten right after with the same size and
 * the same mtime (file system clocks tick coarsely), so its entry is marked racy and re-hashed on the next
 * capture. Sub-second timestamps (ext4, xfs, btrfs, tmpfs, apfs) tick at most every ~10 ms; file systems with
 * whole-second timestamps (ext3, HFS+, FAT's 2 s) need a wider window.
 */
export function racyWindowMs(mtimeMs: number): number {
  return mtimeMs % 1000 === 0 ? 2000 : 50;
}

export function isRacy(mtimeMs: number, captureStartMs: number): boolean {
  return mtimeMs > captureStartMs - racyWindowMs(mtimeMs);
}

export interface CaptureContext {
  options: CompiledChronicleOptions;
  db: Db;
  blobs: BlobStore;
  manifest: Manifest;
  log: VersionLog;
}

interface Recorded {
  path: string;
  change: ChangeKind;
  entry: ManifestEntry | undefined;
}

function sameStat(entry: ManifestEntry, stat: fs.Stats): boolean {
  return entry.size === stat.size && entry.mtimeMs === stat.mtimeMs && entry.ctimeMs === stat.ctimeMs && entry.ino === stat.ino;
}

function isKept(path: string, skippedFiles: ReadonlySet<string>, unreadableDirs: readonly string[]): boolean {
  return skippedFiles.has(path) || unreadableDirs.some((dir) => path.startsWith(`${dir}/`));
}

let scanGeneration = 0;

export function captureWorkspace(ctx: CaptureContext, latestIteration: number): CaptureResult | undefined {
  const { options, manifest, blobs } = ctx;
  const timestamp = Date.now();
  const generation = ++scanGeneration;
  const candidates: string[] = [];
  const scannedMtime = new Map<string, number>();
  let seenRecorded = 0;
  let scanned: ScanResult;
  try {
    let lastDir: string | undefined;
    let recordedHere: ReadonlyMap<string, ManifestEntry> | undefined;
    scanned = scanWorkspace(options.workspaceReal, options.ignore, (dir, name, stat) => {
      if (dir !== lastDir) {
        lastDir = dir;
        recordedHere = manifest.directory(dir);
      }
      const previous = recordedHere?.get(name);
      if (previous) {
        previous.seen = generation;
        seenRecorded++;
        if (!previous.racy && sameStat(previous, stat)) return;
      }
      const path = dir === "" ? name : `${dir}/${name}`;
      candidates.push(path);
      scannedMtime.set(path, stat.mtimeMs);
    });
  } catch (err) {
    const why = errnoCode(err);
    throw new ConnectError(`cannot scan workspace ${options.workspaceDir}: ${why}`, Code.FailedPrecondition);
  }
  const missing: string[] = [];
  if (seenRecorded !== manifest.entries.size) {
    const skippedFiles = new Set(scanned.skipped.map((s) => s.path));
    for (const [path, entry] of manifest.entries) {
      if (entry.seen !== generation && !isKept(path, skippedFiles, scanned.unreadableDirs)) missing.push(path);
    }
  }
  if (candidates.length === 0 && missing.length === 0) return undefined;

  const skipped: SkippedPath[] = [...scanned.skipped];
  const iteration = latestIteration + 1;
  const recorded: Recorded[] = [];
  const updates: ManifestUpdate[] = [];

  // A nested transaction is a savepoint: a file that fails mid-read leaves no partial blob behind.
  const storeOne = ctx.db.transaction((fd: number, size: number) => blobs.putFd(fd, size));
  const write = ctx.db.transaction(() => {
    for (const path of candidates) {
      const previous = manifest.get(path);
      const opened = openForCapture(options.workspaceReal, `${options.workspaceReal}/${path}`);
      if (!opened.ok) {
        if (opened.gone) missing.push(path);
        else skipped.push({ path, reason: opened.reason });
        continue;
      }
      const { fd, stat } = opened;
      let blob: StoredBlob | undefined;
      try {
        if (stat.size <= options.maxFileBytes) blob = storeOne(fd, stat.size);
      } catch (err) {
        skipped.push({ path, reason: errnoCode(err) }); // read error: keep the last version
        continue;
      } finally {
        fs.closeSync(fd);
      }
      const size = blob?.size ?? stat.size;
      const scannedAt = scannedMtime.get(path);
      const racy = isRacy(stat.mtimeMs, timestamp) || size !== stat.size || scannedAt !== stat.mtimeMs;
      const entry: ManifestEntry = {
        size,
        mtimeMs: stat.mtimeMs,
        ctimeMs: stat.ctimeMs,
        ino: stat.ino,
        blobId: blob?.id ?? null,
        hash: blob?.hash ?? null,
        iteration,
        racy,
      };
      const unchanged =
        previous !== undefined &&
        (blob ? previous.blobId === blob.id : previous.blobId === null && previous.size === size && previous.mtimeMs === stat.mtimeMs);
      if (unchanged) {
        updates.push([path, { ...entry, iteration: previous.iteration }]);
      } else {
        recorded.push({ path, change: previous ? "modified" : "created", entry });
        updates.push([path, entry]);
      }
    }
    for (const path of missing) {
      const previous = manifest.get(path);
      if (!previous) continue; // a new file that vanished before it was read
      recorded.push({ path, change: "deleted", entry: undefined });
      updates.push([path, undefined]);
    }
    if (recorded.length > 0) {
      ctx.log.addIteration(iteration, timestamp, "capture");
      for (const { path, change, entry } of recorded) {
        ctx.log.addVersion(path, iteration, change, entry?.blobId ?? null, entry?.size ?? 0, entry?.mtimeMs ?? timestamp);
      }
    }
    manifest.write(updates);
  });
  write.immediate();
  manifest.apply(updates);
  if (recorded.length === 0) return undefined;

  const files: FileChange[] = recorded
    .map(({ path, change, entry }): FileChange => (entry && entry.blobId === null ? { path, change, tooLarge: true } : { path, change }))
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const result: CaptureResult = { iteration, timestamp, files, liveBytes: manifest.liveBytes, quotaBytes: options.quotaBytes };
  if (manifest.liveBytes > options.quotaBytes) result.quotaExceeded = true;
  if (skipped.length > 0) result.skipped = skipped;
  return result;
}
