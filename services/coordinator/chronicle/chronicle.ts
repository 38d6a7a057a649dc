/**
 * Chronicle: one agent's versioned workspace. The agent uses ordinary file I/O (and child processes) in
 * its workspace directory; the coordinator calls `capture()` after every turn and on stop, which records
 * what changed since the last capture as one new iteration, content-addressed in SQLite.
 * See docs/chronicle.md for the mechanism, schema, iteration semantics, limits and safety rules.
 *
 * One Chronicle per database per process (opening the same dbPath twice throws FailedPrecondition).
 * All methods are synchronous (better-sqlite3); capture() costs ~ a stat walk of the tree plus reading
 * the changed files, or, with change tracking (`watch`, workspace-watcher.ts), a stat of each path inotify
 * reported plus reading the changed files, with a full scan as the fallback and periodic safety net.
 */
import fs from "node:fs";
import path from "node:path";
import { Readable } from "node:stream";
import { isUtf8 } from "node:buffer";
import { Code, ConnectError } from "@connectrpc/connect";
import { BlobStore, formatHash } from "./blob-store.js";
import { assertDbOutsideWorkspace, openChronicleDb, type Db } from "./chronicle-db.js";
import { compileChronicleOptions, type CompiledChronicleOptions } from "./chronicle-options.js";
import type { BlobStream, CaptureResult, ChronicleOptions, ChronicleUsage, FileChange, FileContent, FileEntry, FileStat, IterationMeta, SkippedPath } from "./chronicle-types.js";
import { listTree } from "./file-tree.js";
import { Manifest, type ManifestEntry, type ManifestUpdate } from "./manifest.js";
import { VersionLog, type VersionRow } from "./version-log.js";
import { captureWorkspace, isRacy, type CaptureContext } from "./workspace-capture.js";
import { errnoCode, workspaceOwner, writeWorkspaceFile } from "./workspace-io.js";
import { resolveWorkspacePath } from "./workspace-path.js";
import { WorkspaceWatcher, type DrainResult } from "./workspace-watcher.js";

/** With a watcher, a full scan still runs at least this often (a safety net for anything inotify missed). */
export const FULL_SCAN_INTERVAL_MS = 60_000;
export const FULL_SCAN_EVERY_CAPTURES = 100;

export type * from "./chronicle-types.js";

/** A stored version: what read/at/stat/openBlobStream resolve a (path, iteration) to. */
interface StoredVersion {
  path: string;
  iteration: number;
  blobId: number;
  hash: string;
  size: number;
}

function quote(relative: string): string {
  return JSON.stringify(relative === "" ? "/" : relative);
}

function toMeta(row: VersionRow): IterationMeta {
  const meta: IterationMeta = {
    iteration: row.iteration,
    timestamp: row.timestamp,
    size: row.size,
    hash: row.hash === null ? "" : formatHash(row.hash),
    change: row.change,
  };
  if (row.change !== "deleted" && row.blobId === null) meta.tooLarge = true;
  return meta;
}

export function encodeContent(data: Buffer): Pick<FileContent, "content" | "encoding"> {
  if (isUtf8(data) && !data.includes(0)) return { content: data.toString("utf8"), encoding: "utf8" };
  return { content: data.toString("base64"), encoding: "base64" };
}

/** What `materializeWorkspace()` wrote. */
export interface MaterializeResult {
  /** The iteration the workspace now shows (the latest). */
  iteration: number;
  files: number;
  bytes: number;
  /** Files not written: content over maxFileBytes (never stored) or a blocked target. */
  skipped: SkippedPath[];
}

export class Chronicle {
  private static readonly openDbs = new Set<string>();
  private readonly blobs: BlobStore;
  private readonly manifest: Manifest;
  private readonly log: VersionLog;
  private readonly captureContext: CaptureContext;
  private latest: number;
  private closed = false;
  private watcher: WorkspaceWatcher | undefined;
  /** A full scan ran after the watcher was ready: from then on its dirty paths are complete. */
  private watchBaseline = false;
  private lastFullScanAt = 0;
  private capturesSinceFullScan = 0;
  /** Why the last capture walked the whole tree (undefined: it used the watcher's dirty paths). For tests/benches. */
  lastFullScanReason: string | undefined;
  /** The last capture needed neither barrier nor scan (nothing changed, see unchangedSinceCapture). For tests/benches. */
  lastCaptureSkipped = false;

  private constructor(
    private readonly options: CompiledChronicleOptions,
    private readonly db: Db,
    private readonly dbKey: string,
  ) {
    this.blobs = new BlobStore(db);
    this.manifest = new Manifest(db);
    this.log = new VersionLog(db);
    this.captureContext = { options, db, blobs: this.blobs, manifest: this.manifest, log: this.log };
    this.latest = this.log.latestIteration();
    if (options.watch && fs.existsSync(options.workspaceReal) && WorkspaceWatcher.supported(options.workspaceReal)) {
      try {
        this.watcher = new WorkspaceWatcher(options.workspaceReal, options.ignore);
      } catch {
        this.watcher = undefined; // no watcher: every capture is a full scan
      }
    }
  }

  static open(options: ChronicleOptions): Chronicle {
    const compiled = compileChronicleOptions(options);
    assertDbOutsideWorkspace(compiled.workspaceReal, compiled.dbPath);
    const dbKey = path.join(fs.realpathSync(path.dirname(compiled.dbPath)), path.basename(compiled.dbPath));
    if (Chronicle.openDbs.has(dbKey)) {
      throw new ConnectError(`chronicle ${dbKey} is already open in this process`, Code.FailedPrecondition);
    }
    const db = openChronicleDb(compiled.dbPath);
    try {
      const chronicle = new Chronicle(compiled, db, dbKey);
      Chronicle.openDbs.add(dbKey);
      return chronicle;
    } catch (err) {
      db.close();
      throw err;
    }
  }

  get workspaceDir(): string {
    return this.options.workspaceDir;
  }

  /** The newest iteration (0 before the first capture). */
  get latestIteration(): number {
    return this.latest;
  }

  /** Records what changed in the workspace since the last capture; undefined when nothing did. */
  capture(): CaptureResult | undefined {
    this.assertOpen();
    if (this.unchangedSinceCapture()) return undefined;
    const watcher = this.readyWatcher();
    return this.captureDirty(this.dirtyPaths(watcher?.drain()));
  }

  /**
   * capture() whose change-tracking barrier does not block the thread (it waits on the watch thread
   * asynchronously); the capture itself is synchronous, after the barrier. Undefined when closed meanwhile.
   */
  async captureAsync(): Promise<CaptureResult | undefined> {
    return this.captureSoon();
  }

  /**
   * captureAsync(), answered at once when the watcher proves that nothing changed (undefined, no barrier):
   * a turn's end is then recorded with its last events. Otherwise the promise of the capture after its barrier.
   */
  captureSoon(): Promise<CaptureResult | undefined> | undefined {
    this.assertOpen();
    if (this.unchangedSinceCapture()) return undefined;
    return this.captureAfterBarrier();
  }

  private async captureAfterBarrier(): Promise<CaptureResult | undefined> {
    // Not inside the caller's tick: without a ready watcher (watching off or failed, or a thread still starting,
    // which readyWatcher() waits for) this is a synchronous full scan, and the turn's last events go out first.
    if (!this.watchReady) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.closed) return undefined;
    }
    const watcher = this.readyWatcher();
    const drained = watcher && (await watcher.drainAsync());
    if (this.closed) return undefined;
    return this.captureDirty(this.dirtyPaths(drained));
  }

  /**
   * True when the watcher proves that nothing changed since the last capture (WorkspaceWatcher.unchanged:
   * no barrier, no scan): only once its paths are trusted, with no racy file to re-hash and no full scan due.
   * Counts as a capture that found nothing.
   */
  private unchangedSinceCapture(): boolean {
    const watcher = this.watcher;
    this.lastCaptureSkipped = false;
    if (!watcher || !this.watchBaseline || this.manifest.racyCount > 0) return false;
    if (Date.now() - this.lastFullScanAt >= FULL_SCAN_INTERVAL_MS || this.capturesSinceFullScan >= FULL_SCAN_EVERY_CAPTURES) return false;
    if (!watcher.unchanged()) return false;
    this.capturesSinceFullScan++;
    this.lastFullScanReason = undefined;
    this.lastCaptureSkipped = true;
    return true;
  }

  private captureDirty(dirty: Set<string> | undefined): CaptureResult | undefined {
    let result: CaptureResult | undefined;
    try {
      result = captureWorkspace(this.captureContext, this.latest, dirty);
    } catch (err) {
      this.watchBaseline = false; // the drained paths are lost: the next capture scans everything
      throw err;
    }
    if (dirty) {
      this.capturesSinceFullScan++;
    } else {
      this.lastFullScanAt = Date.now();
      this.capturesSinceFullScan = 0;
    }
    if (result) this.latest = result.iteration;
    return result;
  }

  /**
   * The watcher to drain, undefined for none or not ready yet. The first capture is a full scan anyway; it
   * waits (once) for the worker to watch every directory, so that it can serve as the baseline. Not ready
   * in time: full scans until it is.
   */
  private readyWatcher(): WorkspaceWatcher | undefined {
    const watcher = this.watcher;
    if (!watcher || (!watcher.waitReady(2000) && !watcher.failed)) return undefined;
    return watcher;
  }

  /** True once the change-tracking watcher watches every directory (captures use it from then on). */
  get watchReady(): boolean {
    return this.watcher?.ready ?? false;
  }

  /** True while a change-tracking watcher is running (see `watch` in ChronicleOptions). */
  get watching(): boolean {
    return this.watcher !== undefined;
  }

  /**
   * The watcher's dirty paths since the previous capture, or undefined for a full scan. The watcher is
   * always drained (its barrier makes sure every write that returned before this call has been seen), even
   * when a full scan follows, so the next capture starts from a clean slate.
   */
  private dirtyPaths(drained: DrainResult | undefined): Set<string> | undefined {
    const watcher = this.watcher;
    const full = (reason: string) => {
      this.lastFullScanReason = reason;
      return undefined;
    };
    if (!watcher) return full("no watcher");
    if (!drained) return full("watcher starting");
    if (!drained.ok) {
      if (drained.fatal) {
        watcher.close();
        this.watcher = undefined;
      }
      return full(drained.reason);
    }
    if (!this.watchBaseline) {
      this.watchBaseline = true;
      return full("baseline");
    }
    if (Date.now() - this.lastFullScanAt >= FULL_SCAN_INTERVAL_MS) return full("interval");
    if (this.capturesSinceFullScan >= FULL_SCAN_EVERY_CAPTURES) return full("interval");
    this.lastFullScanReason = undefined;
    return drained.paths;
  }

  /** The current tree below `dirPath` ("" = root), `depth` levels deep (0 or undefined = 1). */
  list(dirPath = "", depth = 1): FileEntry[] {
    this.assertOpen();
    if (!Number.isSafeInteger(depth) || depth < 0) {
      throw new ConnectError(`depth must be a non-negative integer, got ${String(depth)}`, Code.InvalidArgument);
    }
    const { relative } = this.resolve(dirPath);
    if (this.manifest.get(relative)) {
      throw new ConnectError(`${quote(relative)} is a file, not a directory; use read()`, Code.InvalidArgument);
    }
    if (!this.manifest.isDirectory(relative)) {
      throw new ConnectError(`directory ${quote(relative)} does not exist in the workspace`, Code.NotFound);
    }
    return listTree(this.manifest, relative, depth === 0 ? 1 : depth);
  }

  /** The latest recorded content of a file. */
  read(filePath: string): FileContent {
    return this.content(this.latestVersion(filePath));
  }

  /** Metadata of the latest version (or of the version in effect at `iteration`), without the content. */
  stat(filePath: string, iteration?: number): FileStat {
    const version = iteration === undefined ? this.latestVersion(filePath) : this.versionAt(filePath, iteration);
    return { path: version.path, size: version.size, iteration: version.iteration, hash: formatHash(version.hash) };
  }

  /** Every version of a file, oldest first, deletions included. */
  history(filePath: string): IterationMeta[] {
    this.assertOpen();
    const { relative } = this.resolve(filePath);
    const rows = this.log.history(relative);
    if (rows.length === 0) throw this.missing(relative, "has no history: it was never recorded");
    return rows.map(toMeta);
  }

  /** The content of a file as it was at `iteration` (the version in effect then). */
  at(filePath: string, iteration: number): FileContent {
    return this.content(this.versionAt(filePath, iteration));
  }

  /** What changed in one iteration. */
  changes(iteration: number): FileChange[] {
    this.assertOpen();
    this.checkIteration(iteration);
    return this.log.changes(iteration).map((row) => {
      const change: FileChange = { path: row.path, change: row.change };
      if (row.change !== "deleted" && row.blobId === null) change.tooLarge = true;
      return change;
    });
  }

  /**
   * Writes the content a file had at `iteration` back into the workspace and records it as a new
   * iteration (kind 'restore'). Pending workspace changes are captured first, as their own iteration.
   * When the file already has that content nothing is written and its current version is returned.
   * The file (and any parent it creates) belongs to the owner of the workspace root.
   */
  restore(filePath: string, iteration: number): IterationMeta {
    const version = this.versionAt(filePath, iteration);
    this.capture();
    const current = this.manifest.get(version.path);
    if (current && current.blobId === version.blobId) {
      const row = this.log.at(version.path, current.iteration);
      if (row) return toMeta(row);
    }
    const stat = writeWorkspaceFile(this.options.workspaceReal, version.path, this.blobs.read(version.blobId));
    const iterationNo = this.latest + 1;
    const timestamp = Date.now();
    const change = current ? "modified" : "created";
    const entry: ManifestEntry = {
      size: version.size,
      mtimeMs: stat.mtimeMs,
      ctimeMs: stat.ctimeMs,
      ino: stat.ino,
      blobId: version.blobId,
      hash: version.hash,
      iteration: iterationNo,
      racy: isRacy(stat.mtimeMs, timestamp),
    };
    this.db
      .transaction(() => {
        this.log.addIteration(iterationNo, timestamp, "restore");
        this.log.addVersion(version.path, iterationNo, change, version.blobId, version.size, stat.mtimeMs);
        this.manifest.write([[version.path, entry]]);
      })
      .immediate();
    this.manifest.apply([[version.path, entry]]);
    this.latest = iterationNo;
    return { iteration: iterationNo, timestamp, size: version.size, hash: formatHash(version.hash), change };
  }

  /**
   * Writes every file of the latest iteration into the workspace: used after the database was restored
   * from a replica onto a host without the workspace (docs/replication.md). Refreshes the written files'
   * stat fingerprints, so the next capture finds no change; records no iteration. Files on disk that the
   * manifest does not list are left alone (the next capture records them as created). Files whose content
   * was never stored (over maxFileBytes) or whose target is blocked are skipped, and the next capture
   * records them as deleted. Permission bits are not versioned: written files get 0644. Written files and
   * created directories belong to the owner of the workspace root (workspace-io.ts `workspaceOwner`).
   */
  materializeWorkspace(): MaterializeResult {
    this.assertOpen();
    const written: [string, ManifestEntry][] = [];
    const skipped: SkippedPath[] = [];
    let bytes = 0;
    const owner = workspaceOwner(this.options.workspaceReal);
    for (const [relative, entry] of this.manifest.entries) {
      if (entry.blobId === null) {
        skipped.push({ path: relative, reason: "tooLarge" });
        continue;
      }
      let stat: fs.Stats;
      try {
        stat = writeWorkspaceFile(this.options.workspaceReal, relative, this.blobs.read(entry.blobId), owner);
      } catch (err) {
        skipped.push({ path: relative, reason: err instanceof ConnectError ? err.rawMessage : errnoCode(err) });
        continue;
      }
      written.push([relative, { ...entry, mtimeMs: stat.mtimeMs, ctimeMs: stat.ctimeMs, ino: stat.ino }]);
      bytes += entry.size;
    }
    const now = Date.now();
    const updates: ManifestUpdate[] = written.map(([relative, entry]) => [relative, { ...entry, racy: isRacy(entry.mtimeMs, now) }]);
    this.db.transaction(() => this.manifest.write(updates)).immediate();
    this.manifest.apply(updates);
    return { iteration: this.latest, files: written.length, bytes, skipped };
  }

  /** Streams a (possibly huge) file's raw bytes chunk by chunk, latest or at `iteration`. */
  openBlobStream(filePath: string, iteration?: number): BlobStream {
    const version = iteration === undefined ? this.latestVersion(filePath) : this.versionAt(filePath, iteration);
    const chunks = this.blobs.chunks(version.blobId);
    const isClosed = () => this.closed;
    function* guarded(): Generator<Buffer, void, undefined> {
      for (;;) {
        if (isClosed()) throw new ConnectError("chronicle closed while streaming", Code.Unavailable);
        const next = chunks.next();
        if (next.done) return;
        yield next.value;
      }
    }
    const file: FileStat = { path: version.path, size: version.size, iteration: version.iteration, hash: formatHash(version.hash) };
    return { file, stream: Readable.from(guarded(), { objectMode: false }) };
  }

  usage(): ChronicleUsage {
    this.assertOpen();
    const fileSize = (p: string) => fs.statSync(p, { throwIfNoEntry: false })?.size ?? 0;
    return {
      liveBytes: this.manifest.liveBytes,
      liveFiles: this.manifest.entries.size,
      rawVersionBytes: this.log.rawVersionBytes(),
      ...this.blobs.usage(),
      dbBytes: fileSize(this.options.dbPath) + fileSize(`${this.options.dbPath}-wal`),
      latestIteration: this.latest,
    };
  }

  /**
   * Frees the page cache of its database (`PRAGMA shrink_memory`), for an idle agent: data and results are
   * unchanged, the next capture reads its pages from the OS cache. Best effort, like AgentStore.releaseMemory.
   */
  releaseMemory(): void {
    if (this.closed) return;
    try {
      this.db.pragma("shrink_memory");
    } catch {
      // busy (an iterator is open on it): nothing to release now
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.watcher?.close();
    this.watcher = undefined;
    Chronicle.openDbs.delete(this.dbKey);
    this.db.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new ConnectError("chronicle is closed", Code.FailedPrecondition);
  }

  private resolve(userPath: string) {
    return resolveWorkspacePath(this.options.workspaceDir, userPath);
  }

  private checkIteration(iteration: number): void {
    if (!Number.isSafeInteger(iteration) || iteration < 1) {
      throw new ConnectError(`iteration must be a positive integer, got ${String(iteration)}`, Code.InvalidArgument);
    }
    if (iteration > this.latest) {
      throw new ConnectError(`iteration ${iteration} does not exist (latest is ${this.latest})`, Code.NotFound);
    }
  }

  /** NotFound for a path, or InvalidArgument when it names a directory. */
  private missing(relative: string, what: string): ConnectError {
    if (this.manifest.isDirectory(relative)) {
      return new ConnectError(`${quote(relative)} is a directory; use list()`, Code.InvalidArgument);
    }
    return new ConnectError(`file ${quote(relative)} ${what}`, Code.NotFound);
  }

  private stored(row: VersionRow): StoredVersion {
    if (row.blobId === null || row.hash === null) {
      throw new ConnectError(
        `file ${quote(row.path)} at iteration ${row.iteration} is ${row.size} bytes, over the ${this.options.maxFileBytes}-byte limit; its content was not recorded`,
        Code.ResourceExhausted,
      );
    }
    return { path: row.path, iteration: row.iteration, blobId: row.blobId, hash: row.hash, size: row.size };
  }

  private latestVersion(filePath: string): StoredVersion {
    this.assertOpen();
    const { relative } = this.resolve(filePath);
    const entry = this.manifest.get(relative);
    if (entry && entry.blobId !== null && entry.hash !== null) {
      return { path: relative, iteration: entry.iteration, blobId: entry.blobId, hash: entry.hash, size: entry.size };
    }
    const row = this.log.at(relative, this.latest);
    if (!row) throw this.missing(relative, "does not exist in the workspace");
    if (row.change === "deleted") throw this.missing(relative, `does not exist: it was deleted at iteration ${row.iteration}`);
    return this.stored(row);
  }

  private versionAt(filePath: string, iteration: number): StoredVersion {
    this.assertOpen();
    const { relative } = this.resolve(filePath);
    this.checkIteration(iteration);
    const row = this.log.at(relative, iteration);
    if (!row) {
      const first = this.log.history(relative)[0];
      const hint = first ? ` (it was first recorded at iteration ${first.iteration})` : " (it was never recorded)";
      throw this.missing(relative, `did not exist at iteration ${iteration}${hint}`);
    }
    if (row.change === "deleted") {
      throw new ConnectError(`file ${quote(relative)} did not exist at iteration ${iteration} (deleted at iteration ${row.iteration})`, Code.NotFound);
    }
    return this.stored(row);
  }

  private content(version: StoredVersion): FileContent {
    const data = this.blobs.read(version.blobId);
    return { path: version.path, ...encodeContent(data), size: version.size, iteration: version.iteration, hash: formatHash(version.hash) };
  }
}
