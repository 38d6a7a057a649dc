/**
 * Public shapes of Chronicle, mirroring proto/podium/v1/file_service.proto (FileEntry, FileContent,
 * IterationMeta) with plain numbers (epoch ms) instead of bigint/Timestamp. Re-exported by chronicle.ts.
 */
import type { Readable } from "node:stream";

export interface ChronicleOptions {
  /** The agent's workspace directory. Must exist, except to read the history of an existing database. */
  workspaceDir: string;
  /** SQLite file holding the history; must not be inside the workspace. Created when missing. */
  dbPath: string;
  /**
   * Limit on live workspace content (sum of current file sizes), default 1 GiB. Exceeding it does not
   * stop recording: the capture is stored and `CaptureResult.quotaExceeded` is set; the coordinator turns
   * that into a ResourceExhausted error for the instance.
   */
  quotaBytes?: number;
  /** Files larger than this are versioned by metadata only (no content), default 100 MiB. */
  maxFileBytes?: number;
  /** Path segment names never captured anywhere in the tree (e.g. ".git", "node_modules"). Default none. */
  ignore?: readonly string[];
  /**
   * Track changes with inotify between captures (a worker thread watching every directory), so that
   * capture() looks only at the paths that changed instead of stat'ing every file; a full scan still runs
   * on the first capture, at least every 60 s / 100 captures, and whenever the watcher is in doubt
   * (docs/chronicle.md, "Change tracking"). Default true on Linux; ignored (always a full scan) elsewhere.
   */
  watch?: boolean;
}

export type ChangeKind = "created" | "modified" | "deleted";

export interface FileChange {
  path: string;
  change: ChangeKind;
  /** Set when the file is larger than maxFileBytes: the version has size and time but no content. */
  tooLarge?: true;
}

export interface SkippedPath {
  path: string;
  /** e.g. "EACCES": unreadable files and directories keep their previous version (they are not deleted). */
  reason: string;
}

export interface CaptureResult {
  iteration: number;
  /** Epoch ms. */
  timestamp: number;
  files: FileChange[];
  quotaExceeded?: boolean;
  /** Live workspace content after this capture, bytes (what the quota limits). */
  liveBytes: number;
  quotaBytes: number;
  /** Paths that could not be read during this capture. */
  skipped?: SkippedPath[];
}

export interface FileEntry {
  path: string;
  name: string;
  type: "file" | "directory";
  /** File: bytes. Directory: total bytes of the files below it. */
  size: number;
  /** Epoch ms. File: mtime at capture. Directory: the newest file below it. */
  modifiedAt: number;
  /** File: the iteration that last changed it. Directory: the newest such iteration below it. */
  iteration: number;
}

export interface FileContent {
  path: string;
  content: string;
  encoding: "utf8" | "base64";
  size: number;
  /** The iteration that recorded this content. */
  iteration: number;
  /** "sha256:<hex>" of the raw bytes. */
  hash: string;
}

export interface IterationMeta {
  iteration: number;
  /** Epoch ms of the capture (or restore) that recorded the iteration. */
  timestamp: number;
  /** 0 for deletions. */
  size: number;
  /** "sha256:<hex>"; "" for deletions and for files over maxFileBytes. */
  hash: string;
  change: ChangeKind;
  tooLarge?: true;
}

/** A file's metadata without its content (the REST layer uses it to choose read() or openBlobStream()). */
export type FileStat = Omit<FileContent, "content" | "encoding">;

export interface BlobStream {
  file: FileStat;
  /** Raw bytes, read lazily chunk by chunk (1 MiB) from SQLite. Errors if the Chronicle closes mid-way. */
  stream: Readable;
}

export interface ChronicleUsage {
  /** Current workspace content (sum of current file sizes). */
  liveBytes: number;
  liveFiles: number;
  /** Sum of the sizes of every stored version (what keeping full copies would cost). */
  rawVersionBytes: number;
  /** Distinct contents stored and their compressed size. */
  blobCount: number;
  blobStoredBytes: number;
  /** SQLite file size including the WAL. */
  dbBytes: number;
  latestIteration: number;
}
