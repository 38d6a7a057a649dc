/**
 * Turns the workspace on disk into (at most) one new iteration.
 *
 * 1. Scan: readdir + lstat every regular file (no reads). With change tracking, only the paths the watcher
 *    reported (files lstat'ed, directories walked whole) plus the racy files; the full scan when in doubt.
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
import { scanWorkspace, type FileVisitor } from "./workspace-scanner.js";

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

/** What the scan phase produced: files to open and hash, and recorded files it did not find. */
interface ScanPhase {
  candidates: string[];
  scannedMtime: Map<string, number>;
  missing: string[];
  skipped: SkippedPath[];
}

function splitRelative(path: string): [dir: string, name: string] {
  const slash = path.lastIndexOf("/");
  return slash === -1 ? ["", path] : [path.slice(0, slash), path.slice(slash + 1)];
}

/**
 * Builds the per-file visitor shared by the full and the dirty-path scan: files whose stat fingerprint
 * matches the manifest (and are not racy) are skipped, the rest become candidates. A file visited twice in
 * one scan (dirty, and below a dirty directory) counts once.
 */
function collector(manifest: Manifest, generation: number) {
  const candidates: string[] = [];
  const scannedMtime = new Map<string, number>();
  let seenRecorded = 0;
  let lastDir: string | undefined;
  let recordedHere: ReadonlyMap<string, ManifestEntry> | undefined;
  const visit: FileVisitor = (dir, name, stat) => {
    if (dir !== lastDir) {
      lastDir = dir;
      recordedHere = manifest.directory(dir);
    }
    const previous = recordedHere?.get(name);
    if (previous) {
      if (previous.seen === generation) return;
      previous.seen = generation;
      seenRecorded++;
      if (!previous.racy && sameStat(previous, stat)) return;
    }
    const path = dir === "" ? name : `${dir}/${name}`;
    if (!previous && scannedMtime.has(path)) return;
    candidates.push(path);
    scannedMtime.set(path, stat.mtimeMs);
  };
  return { candidates, scannedMtime, visit, seenRecorded: () => seenRecorded };
}

function scanFull(options: CompiledChronicleOptions, manifest: Manifest, generation: number): ScanPhase {
  const collect = collector(manifest, generation);
  const scanned = scanWorkspace(options.workspaceReal, options.ignore, collect.visit);
  const missing: string[] = [];
  if (collect.seenRecorded() !== manifest.entries.size) {
    const skippedFiles = new Set(scanned.skipped.map((s) => s.path));
    for (const [path, entry] of manifest.entries) {
      if (entry.seen !== generation && !isKept(path, skippedFiles, scanned.unreadableDirs)) missing.push(path);
    }
  }
  return { candidates: collect.candidates, scannedMtime: collect.scannedMtime, missing, skipped: scanned.skipped };
}

/**
 * The watcher's fast path: looks only at the dirty paths (plus the files marked racy). A dirty path that is
 * a directory is walked completely (it may be new, renamed in, or made readable); recorded files at or
 * below a dirty path that the walk did not see are deletions. Returns undefined when in doubt (a path that
 * cannot be stat'ed for a reason other than absence, a name that is not valid UTF-8): the caller scans fully.
 */
function scanDirty(options: CompiledChronicleOptions, manifest: Manifest, generation: number, dirty: ReadonlySet<string>): ScanPhase | undefined {
  const root = options.workspaceReal;
  const paths = new Set(dirty);
  for (const [path, entry] of manifest.entries) if (entry.racy) paths.add(path);
  const collect = collector(manifest, generation);
  const realDirs = new Map<string, boolean>([["", true]]);
  /** True when every ancestor of `path` is a real directory (not a symlink): what the full walk would enter. */
  const reachable = (dir: string): boolean => {
    const known = realDirs.get(dir);
    if (known !== undefined) return known;
    const [parent] = splitRelative(dir);
    let ok = reachable(parent);
    if (ok) ok = fs.lstatSync(`${root}/${dir}`, { throwIfNoEntry: false })?.isDirectory() ?? false;
    realDirs.set(dir, ok);
    return ok;
  };
  const walkRoots: string[] = [];
  const scopes: string[] = [];
  try {
    for (const path of paths) {
      if (path === "" || path.includes("\uFFFD")) return undefined;
      if (options.ignore.size > 0 && path.split("/").some((segment) => options.ignore.has(segment))) continue;
      scopes.push(path);
      const [dir, name] = splitRelative(path);
      if (!reachable(dir)) continue;
      const stat = fs.lstatSync(`${root}/${path}`, { throwIfNoEntry: false });
      if (stat?.isDirectory()) walkRoots.push(path);
      else if (stat?.isFile()) collect.visit(dir, name, stat);
    }
  } catch {
    return undefined; // e.g. EACCES on a parent: let the full scan decide what is kept
  }
  walkRoots.sort();
  const skipped: SkippedPath[] = [];
  const unreadableDirs: string[] = [];
  let previousRoot: string | undefined;
  for (const dir of walkRoots) {
    if (previousRoot !== undefined && (dir === previousRoot || dir.startsWith(`${previousRoot}/`))) continue;
    previousRoot = dir;
    const scanned = scanWorkspace(root, options.ignore, collect.visit, dir);
    skipped.push(...scanned.skipped);
    unreadableDirs.push(...scanned.unreadableDirs);
  }
  const skippedFiles = new Set(skipped.map((s) => s.path));
  const missing = new Set<string>();
  for (const scope of scopes) {
    const file = manifest.get(scope);
    const recorded: Iterable<[string, ManifestEntry]> = file ? [[scope, file]] : manifest.isDirectory(scope) ? manifest.filesUnder(scope) : [];
    for (const [path, entry] of recorded) {
      if (entry.seen !== generation && !isKept(path, skippedFiles, unreadableDirs)) missing.add(path);
    }
  }
  return { candidates: collect.candidates, scannedMtime: collect.scannedMtime, missing: [...missing], skipped };
}

/**
 * `dirty`: when given (the watcher's paths since the previous capture, see workspace-watcher.ts), only those
 * paths are looked at; otherwise the whole workspace is walked.
 */
export function captureWorkspace(ctx: CaptureContext, latestIteration: number, dirty?: ReadonlySet<string>): CaptureResult | undefined {
  const { options, manifest, blobs } = ctx;
  const timestamp = Date.now();
  const generation = ++scanGeneration;
  let phase: ScanPhase | undefined;
  try {
    if (dirty) phase = scanDirty(options, manifest, generation, dirty);
    phase ??= scanFull(options, manifest, dirty ? ++scanGeneration : generation);
  } catch (err) {
    const why = errnoCode(err);
    throw new ConnectError(`cannot scan workspace ${options.workspaceDir}: ${why}`, Code.FailedPrecondition);
  }
  const { candidates, scannedMtime, missing } = phase;
  if (candidates.length === 0 && missing.length === 0) return undefined;

  const skipped: SkippedPath[] = [...phase.skipped];
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
      const unchanged = previous !== undefined && (blob ? previous.blobId === blob.id : previous.blobId === null && previous.size === size && previous.mtimeMs === stat.mtimeMs);
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
