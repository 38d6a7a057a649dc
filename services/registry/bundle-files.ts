/**
 * The file set of a bundle directory: which files belong to a bundle, in which order, and the
 * content digest over them. Packing, extraction and digests all go through here so that
 * `bundleDigest(dir)` of a source directory equals the digest of the same bundle after pack/extract.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { MANIFEST_FILE, checkEntryExists, parseBundleManifest } from "./bundle-manifest.js";
import type { BundleManifest } from "./bundle-manifest.js";

/** Names never packed, extracted or digested, at any depth. */
export const SKIPPED_NAMES: ReadonlySet<string> = new Set(["node_modules", ".git", "__pycache__", ".DS_Store"]);

/** Largest podium.json we read. */
export const MAX_MANIFEST_BYTES = 64 * 1024;

export function isSkippedPath(relPath: string): boolean {
  return relPath.split("/").some((segment) => SKIPPED_NAMES.has(segment));
}

export interface BundleFile {
  /** '/'-separated path relative to the bundle root. */
  path: string;
  /** Absolute path to read the content from (a symlink inside the bundle is resolved). */
  absPath: string;
  executable: boolean;
  size: number;
}

/** Byte order of the UTF-8 encoding: the same on every platform and locale. */
export function comparePaths(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}

function isInside(root: string, target: string): boolean {
  const rel = path.relative(root, target);
  return rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel));
}

/**
 * Lists the regular files of a bundle directory, sorted by path (UTF-8 byte order). Skips
 * SKIPPED_NAMES. A symlink whose target is inside the bundle is followed (its content is packed as a
 * regular file / directory); one pointing outside, a symlink cycle, or any other file type (socket,
 * FIFO, device) is refused with InvalidArgument. Empty directories are not part of a bundle.
 */
export async function walkBundle(dir: string): Promise<BundleFile[]> {
  let root: string;
  try {
    root = await fsp.realpath(dir);
    if (!(await fsp.stat(root)).isDirectory()) throw invalid(`bundle path ${dir} is not a directory`);
  } catch (error) {
    if (error instanceof ConnectError) throw error;
    throw new ConnectError(`bundle directory ${dir} cannot be read`, Code.NotFound, undefined, undefined, error);
  }
  const files: BundleFile[] = [];
  // `ancestors` holds the real paths of the directories being walked, to detect symlink cycles.
  const visit = async (realDir: string, rel: string, ancestors: Set<string>): Promise<void> => {
    const entries = await fsp.readdir(realDir, { withFileTypes: true });
    for (const entry of entries) {
      if (SKIPPED_NAMES.has(entry.name)) continue;
      const relPath = rel === "" ? entry.name : `${rel}/${entry.name}`;
      let absPath = path.join(realDir, entry.name);
      if (entry.isSymbolicLink()) {
        let target: string;
        try {
          target = await fsp.realpath(absPath);
        } catch {
          throw invalid(`bundle file ${relPath} is a dangling symlink`);
        }
        if (!isInside(root, target)) throw invalid(`bundle file ${relPath} is a symlink pointing outside the bundle`);
        absPath = target;
      }
      const stat = await fsp.stat(absPath);
      if (stat.isDirectory()) {
        if (ancestors.has(absPath)) throw invalid(`bundle directory ${relPath} is a symlink cycle`);
        await visit(absPath, relPath, new Set(ancestors).add(absPath));
      } else if (stat.isFile()) {
        files.push({ path: relPath, absPath, executable: (stat.mode & 0o111) !== 0, size: stat.size });
      } else {
        throw invalid(`bundle file ${relPath} is not a regular file or directory`);
      }
    }
  };
  await visit(root, "", new Set([root]));
  return files.sort((a, b) => comparePaths(a.path, b.path));
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/**
 * "sha256:<hex>" over the bundle's files: for each file in path order, the UTF-8 bytes of
 * `<path>\0<755|644>\0<sha256 hex of content>\n`. Identical content and executable bits give the
 * identical digest, whatever the archive bytes, mtimes or owners were.
 */
export async function digestFiles(files: readonly Pick<BundleFile, "path" | "absPath" | "executable">[]): Promise<string> {
  const hash = createHash("sha256");
  for (const file of [...files].sort((a, b) => comparePaths(a.path, b.path))) {
    const contentHash = await sha256File(file.absPath);
    hash.update(`${file.path}\0${file.executable ? "755" : "644"}\0${contentHash}\n`, "utf8");
  }
  return `sha256:${hash.digest("hex")}`;
}

/** The content digest of a bundle directory (see digestFiles). */
export async function bundleDigest(dir: string): Promise<string> {
  return digestFiles(await walkBundle(dir));
}

/** Reads and validates podium.json of a bundle directory against its file list. */
export async function readManifest(files: readonly Pick<BundleFile, "path" | "absPath">[]): Promise<BundleManifest> {
  const manifestFile = files.find((f) => f.path === MANIFEST_FILE);
  if (!manifestFile) throw invalid(`bundle has no ${MANIFEST_FILE} at its root`);
  if ((await fsp.stat(manifestFile.absPath)).size > MAX_MANIFEST_BYTES) {
    throw invalid(`${MANIFEST_FILE} is larger than ${MAX_MANIFEST_BYTES} bytes`);
  }
  const text = (await fsp.readFile(manifestFile.absPath, "utf8")).replace(/^\uFEFF/, "");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw invalid(`${MANIFEST_FILE} is not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  const manifest = parseBundleManifest(json);
  const paths = new Set(files.map((f) => f.path));
  checkEntryExists(manifest, (p) => paths.has(p));
  return manifest;
}
