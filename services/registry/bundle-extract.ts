/**
 * Safe extraction of an uploaded bundle archive (.tar.gz). Untrusted input: only regular files and
 * directories are created, paths stay inside destDir, and file count, unpacked size and the
 * decompression ratio are limited while streaming (gzip-bomb safe); what follows the tar's
 * end-of-archive marker is counted, not parsed. Any failure removes everything written. See docs/deployments.md.
 */
import { randomBytes } from "node:crypto";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { Code, ConnectError } from "@connectrpc/connect";
import { Parser } from "tar";
import type { ReadEntry } from "tar";
import { MANIFEST_FILE } from "./bundle-manifest.js";
import type { BundleManifest } from "./bundle-manifest.js";
import { throwIfAborted } from "./cancel.js";
import { digestFiles, isSkippedPath, readManifest, walkBundle } from "./bundle-files.js";

export const DEFAULT_MAX_FILES = 10_000;
export const DEFAULT_MAX_BYTES = 512 * 1024 * 1024;
/** Most decompressed bytes per compressed byte, checked once RATIO_GRACE_BYTES have been decompressed. */
export const DEFAULT_MAX_RATIO = 100;
const RATIO_GRACE_BYTES = 4 * 1024 * 1024;
/** Tar bytes allowed per entry on top of content: header, pax header, padding. */
const ENTRY_OVERHEAD = 3 * 1024;
const FIXED_OVERHEAD = 1024 * 1024;
const MAX_META_ENTRY = 64 * 1024;
const MAX_SEGMENT_BYTES = 255;

export interface ExtractLimits {
  /** Most entries (files and directories) in the archive. Default 10,000. */
  maxFiles?: number;
  /** Most bytes of file content in the archive. Default 512 MiB. */
  maxBytes?: number;
  /**
   * Most decompressed bytes per compressed byte (gzip of zeros reaches ~1000). Checked once the
   * first 4 MiB are decompressed, so small archives with tar padding pass. Default 100.
   */
  maxRatio?: number;
  /** Aborts the extraction (ConnectError Canceled); nothing is left behind. */
  signal?: AbortSignal;
}

export interface ExtractedBundle {
  manifest: BundleManifest;
  digest: string;
  /** Regular files extracted (skipped names excluded). */
  files: number;
  /** Bytes of file content extracted. */
  bytes: number;
}

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function errorCode(error: unknown): string | undefined {
  // Not `instanceof Error`: fs errors from another realm (jest VM contexts) would not match.
  const code = typeof error === "object" && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === "string" ? code : undefined;
}

/** An archive path as a '/'-joined relative path ("" for the root), or InvalidArgument. */
export function normalizeArchivePath(raw: string): string {
  const shown = JSON.stringify(raw);
  if (raw.includes("\0")) throw invalid(`bundle entry ${shown} contains a NUL character`);
  if (raw.includes("\\")) throw invalid(`bundle entry ${shown} contains a backslash`);
  if (raw.startsWith("/") || /^[A-Za-z]:/.test(raw)) throw invalid(`bundle entry ${shown} is an absolute path`);
  const segments = raw.split("/").filter((s) => s !== "" && s !== ".");
  if (segments.includes("..")) throw invalid(`bundle entry ${shown} contains '..'`);
  if (segments.some((s) => Buffer.byteLength(s) > MAX_SEGMENT_BYTES)) {
    throw invalid(`bundle entry ${shown} has a name longer than ${MAX_SEGMENT_BYTES} bytes`);
  }
  return segments.join("/");
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`${name} must be a positive integer`);
  return value;
}

/** Prepares destDir (must be missing or empty); returns whether it was created. */
async function prepareDest(destDir: string): Promise<boolean> {
  try {
    const existing = await fsp.readdir(destDir);
    if (existing.length > 0) {
      throw new ConnectError(`extraction directory ${destDir} is not empty`, Code.FailedPrecondition);
    }
    return false;
  } catch (error) {
    if (errorCode(error) !== "ENOENT") throw error;
    await fsp.mkdir(destDir, { recursive: true });
    return true;
  }
}

async function cleanup(destDir: string, created: boolean): Promise<void> {
  if (created) {
    await fsp.rm(destDir, { recursive: true, force: true });
    return;
  }
  const names = await fsp.readdir(destDir).catch(() => [] as string[]);
  await Promise.all(names.map((name) => fsp.rm(path.join(destDir, name), { recursive: true, force: true })));
}

/**
 * A bundle may have podium.json at the archive root or inside a single top-level folder (as made by
 * `tar czf agent.tgz my-agent/`); in the second case the folder's contents are moved up.
 */
async function hoistSingleFolder(destDir: string): Promise<void> {
  const top = await fsp.readdir(destDir, { withFileTypes: true });
  if (top.some((e) => e.name === MANIFEST_FILE)) return;
  const only = top[0];
  if (top.length !== 1 || !only?.isDirectory()) {
    throw invalid(`bundle has no ${MANIFEST_FILE} at its root (or inside a single top-level folder)`);
  }
  const inner = await fsp.readdir(path.join(destDir, only.name));
  if (!inner.includes(MANIFEST_FILE)) {
    throw invalid(`bundle has no ${MANIFEST_FILE} at its root (or inside its top-level folder ${only.name})`);
  }
  const staging = path.join(destDir, `.podium-hoist-${randomBytes(8).toString("hex")}`);
  await fsp.rename(path.join(destDir, only.name), staging);
  for (const name of inner) await fsp.rename(path.join(staging, name), path.join(destDir, name));
  await fsp.rmdir(staging);
}

/**
 * Extracts a bundle archive into destDir (created if missing; must be empty). Returns the validated
 * manifest, the content digest and counts. Bad archives throw ConnectError(InvalidArgument) and leave
 * destDir empty (removed if this call created it).
 */
export async function extractBundle(archive: Buffer, destDir: string, limits: ExtractLimits = {}): Promise<ExtractedBundle> {
  const maxFiles = positive(limits.maxFiles, DEFAULT_MAX_FILES, "maxFiles");
  const maxBytes = positive(limits.maxBytes, DEFAULT_MAX_BYTES, "maxBytes");
  const maxRatio = positive(limits.maxRatio, DEFAULT_MAX_RATIO, "maxRatio");
  if (archive.length < 2 || archive[0] !== 0x1f || archive[1] !== 0x8b) {
    throw invalid("bundle is not a gzip-compressed tar archive (.tar.gz)");
  }
  throwIfAborted(limits.signal, "bundle extraction");
  const created = await prepareDest(destDir);
  try {
    await unpack(archive, destDir, { maxFiles, maxBytes, maxRatio, signal: limits.signal });
    await hoistSingleFolder(destDir);
    const files = await walkBundle(destDir);
    const manifest = await readManifest(files);
    const digest = await digestFiles(files);
    return { manifest, digest, files: files.length, bytes: files.reduce((sum, f) => sum + f.size, 0) };
  } catch (error) {
    await cleanup(destDir, created);
    if (error instanceof ConnectError) throw error;
    // The message names no host path (the caller's client sees it); the cause keeps the details.
    const code = errorCode(error);
    throw new ConnectError(`bundle extraction failed${code ? ` (${code})` : ""}`, Code.Internal, undefined, undefined, error);
  }
}

interface UnpackOptions {
  maxFiles: number;
  maxBytes: number;
  maxRatio: number;
  signal: AbortSignal | undefined;
}

async function unpack(archive: Buffer, destDir: string, opts: UnpackOptions): Promise<void> {
  const rawLimit = opts.maxBytes + opts.maxFiles * ENTRY_OVERHEAD + FIXED_OVERHEAD;
  let failure: unknown;
  let current: ReadEntry | undefined;
  const wakers = new Set<() => void>();
  const fail = (error: unknown): void => {
    if (failure === undefined) failure = error;
    current?.destroy();
    for (const wake of [...wakers]) wake();
  };
  const onAbort = (): void => fail(new ConnectError("bundle extraction aborted", Code.Canceled));
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  if (opts.signal?.aborted) onAbort();

  const parser = new Parser({ strict: true, maxMetaEntrySize: MAX_META_ENTRY, zstd: false });
  /** Resolves on `event` from the parser, or as soon as the extraction fails. */
  const waitFor = (event: string): Promise<void> =>
    new Promise((resolve) => {
      if (failure !== undefined) return resolve();
      const done = (): void => {
        parser.off(event, done);
        wakers.delete(done);
        resolve();
      };
      parser.on(event, done);
      wakers.add(done);
    });

  let entries = 0;
  let bytes = 0;
  const seen = new Set<string>();
  const handleEntry = async (entry: ReadEntry): Promise<void> => {
    current = entry;
    if (++entries > opts.maxFiles) throw invalid(`bundle has more than ${opts.maxFiles} entries`);
    const rel = normalizeArchivePath(entry.path);
    const isFile = entry.type === "File" || entry.type === "OldFile" || entry.type === "ContiguousFile";
    if (!isFile && entry.type !== "Directory") {
      throw invalid(`bundle entry ${JSON.stringify(entry.path)} is a ${entry.type}; only regular files and directories are allowed`);
    }
    if (!isFile) {
      if (rel !== "" && !isSkippedPath(rel)) await fsp.mkdir(path.join(destDir, rel), { recursive: true });
      entry.resume();
      return;
    }
    if (entry.size > opts.maxBytes - bytes) throw invalid(`bundle unpacks to more than ${opts.maxBytes} bytes`);
    bytes += entry.size;
    if (rel === "") throw invalid(`bundle entry ${JSON.stringify(entry.path)} is a file at the archive root path`);
    if (seen.has(rel)) throw invalid(`bundle entry ${JSON.stringify(rel)} appears twice`);
    seen.add(rel);
    if (isSkippedPath(rel)) {
      entry.resume();
      return;
    }
    const target = path.join(destDir, rel);
    const mode = (entry.mode ?? 0) & 0o111 ? 0o755 : 0o644;
    await fsp.mkdir(path.dirname(target), { recursive: true });
    const handle = await fsp.open(target, "wx", mode);
    try {
      if (failure !== undefined) return;
      for await (const chunk of entry) {
        await handle.write(chunk);
        // failed meanwhile: the entry is destroyed, asking it for more would wait forever
        if (failure !== undefined) return;
      }
      await handle.chmod(mode); // the umask must not drop the executable bit
    } finally {
      await handle.close();
    }
  };
  /** fs errors name the scratch path on the host: say what conflicts in the archive's own terms. */
  const conflict = (error: unknown, entryPath: string): unknown => {
    const code = errorCode(error);
    if (code === "EEXIST" || code === "ENOTDIR" || code === "EISDIR") {
      return invalid(`bundle entry ${JSON.stringify(entryPath)} conflicts with another entry (a path is both a file and a directory)`);
    }
    return error;
  };

  let chain: Promise<void> = Promise.resolve();
  parser.on("entry", (entry: ReadEntry) => {
    chain = chain.then(() => (failure === undefined ? handleEntry(entry) : undefined)).catch((error: unknown) => fail(conflict(error, entry.path)));
  });
  // The end-of-archive marker: tar ignores what follows, and the parser would keep it all by
  // concatenating every chunk onto the rest (quadratic: 100 MB of zeros took minutes of CPU).
  let endOfArchive = false;
  parser.on("eof", () => (endOfArchive = true));
  parser.on("ignoredEntry", (entry: ReadEntry) => {
    fail(entry.meta ? invalid(`bundle has a tar extended header larger than ${MAX_META_ENTRY} bytes`) : invalid(`bundle entry ${JSON.stringify(entry.path)} has an unsupported type (${entry.type})`));
  });
  parser.on("error", (error: unknown) => fail(invalid(`bundle is not a valid tar archive: ${errorMessage(error)}`)));

  const gunzip = zlib.createGunzip({ chunkSize: 64 * 1024 });
  gunzip.end(archive);
  let raw = 0;
  try {
    for await (const chunk of gunzip) {
      if (failure !== undefined) break;
      const buffer = chunk as Buffer;
      if (raw === 0 && buffer[0] === 0x1f && buffer[1] === 0x8b) {
        // gzip inside gzip: the tar parser would inflate the inner stream past our counters
        // (zstd sniffing is off, brotli is never sniffed).
        fail(invalid("bundle is compressed twice; upload a single .tar.gz"));
        break;
      }
      raw += buffer.length;
      if (raw > rawLimit) {
        fail(invalid(`bundle unpacks to more than ${opts.maxBytes} bytes`));
        break;
      }
      // bytesWritten: the compressed bytes gunzip has consumed so far.
      if (raw > RATIO_GRACE_BYTES && raw > opts.maxRatio * gunzip.bytesWritten) {
        fail(invalid(`bundle expands more than ${opts.maxRatio} times when decompressed (a compression bomb?)`));
        break;
      }
      // After the end-of-archive marker the stream is still counted (limits above), never parsed.
      if (!endOfArchive && !parser.write(buffer)) await waitFor("drain");
    }
  } catch (error) {
    fail(invalid(`bundle is not a valid gzip stream: ${errorMessage(error)}`));
  } finally {
    gunzip.destroy();
  }
  if (failure === undefined) {
    const ended = waitFor("end");
    parser.end();
    await ended;
  }
  await chain;
  opts.signal?.removeEventListener("abort", onAbort);
  if (failure !== undefined) throw failure;
}
