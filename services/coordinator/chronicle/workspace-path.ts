/**
 * The one gate between a user-supplied path (REST URL, RPC field, agent frame) and the workspace.
 * Every Chronicle method that takes a path sends it through `resolveWorkspacePath` first.
 *
 * Rules (all violations throw ConnectError(Code.InvalidArgument)):
 * - a string of at most 4096 bytes, segments of at most 255 bytes;
 * - no NUL, no backslash (no `..\x` tricks), no absolute path (`/x`, `C:/x`);
 * - no `..` segment anywhere, also when it would stay inside (`a/../b`): there is one spelling per file;
 * - no segment that percent-decodes (once or more) to `.`/`..` or to something holding `/`, `\` or NUL,
 *   so a path the edge already decoded cannot be decoded again into a traversal (`%2e%2e`, `%252e%252e`);
 * - every prefix that exists on disk is checked with lstat: a symlink on the way must resolve inside the
 *   workspace (a symlink that points outside, or a symlinked directory that does, is refused).
 * `""`, `"."` and `"./"` name the root. Empty and `.` segments are dropped (`a//b/./c` -> `a/b/c`).
 */
import fs from "node:fs";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";

export const MAX_PATH_BYTES = 4096;
export const MAX_SEGMENT_BYTES = 255;

export interface WorkspacePath {
  /** POSIX, relative to the workspace root, no leading or trailing slash; "" is the root. */
  relative: string;
  /** `workspaceDir` joined with `relative` (lexically; symlinks on the way were checked, not expanded). */
  absolute: string;
}

function refuse(userPath: string, why: string): ConnectError {
  const shown = JSON.stringify(userPath.length > 200 ? `${userPath.slice(0, 200)}…` : userPath);
  return new ConnectError(`invalid workspace path ${shown}: ${why}`, Code.InvalidArgument);
}

const DANGEROUS_ESCAPE = /%(2e|2f|5c|00|25)/gi;
const DECODED: Record<string, string> = { "2e": ".", "2f": "/", "5c": "\\", "00": "\0", "25": "%" };

/**
 * Decodes the escapes that matter for traversal (`.` `/` `\` NUL, and `%` itself for double encoding),
 * leniently (a stray `%` elsewhere stays as it is, as lenient decoders do), until stable.
 */
function decodedForCheck(segment: string): string {
  let current = segment;
  for (let round = 0; round < 4; round++) {
    const next = current.replace(DANGEROUS_ESCAPE, (_m, hex: string) => DECODED[hex.toLowerCase()] ?? "");
    if (next === current) break;
    current = next;
  }
  return current;
}

/** Checks the shape of the string and returns its normalized relative form. No file system access. */
export function normalizeWorkspacePath(userPath: string): string {
  if (typeof userPath !== "string") throw refuse(String(userPath), "not a string");
  if (Buffer.byteLength(userPath, "utf8") > MAX_PATH_BYTES) throw refuse(userPath, `longer than ${MAX_PATH_BYTES} bytes`);
  if (userPath.includes("\0")) throw refuse(userPath, "contains a NUL byte");
  if (userPath.includes("\\")) throw refuse(userPath, "contains a backslash; use '/' as the separator");
  if (userPath.startsWith("/")) throw refuse(userPath, "absolute paths are not allowed; paths are relative to the workspace root");
  if (/^[A-Za-z]:(\/|$)/.test(userPath)) throw refuse(userPath, "drive-letter paths are not allowed");
  const kept: string[] = [];
  for (const segment of userPath.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") throw refuse(userPath, "'..' segments are not allowed");
    if (Buffer.byteLength(segment, "utf8") > MAX_SEGMENT_BYTES) throw refuse(userPath, `a segment is longer than ${MAX_SEGMENT_BYTES} bytes`);
    if (segment.includes("%")) {
      // Overlong UTF-8 forms of '.' and '/' (%c0%ae, %c0%af) that broken decoders accept.
      if (/%c[01]/i.test(segment)) throw refuse(userPath, "overlong UTF-8 percent-encoding is not allowed");
      const decoded = decodedForCheck(segment);
      if (decoded === "." || decoded === ".." || /[/\\\0]/.test(decoded)) {
        throw refuse(userPath, "percent-encoded '.', '..', '/', '\\' or NUL is not allowed");
      }
    }
    kept.push(segment);
  }
  return kept.join("/");
}

function isInside(root: string, candidate: string): boolean {
  return candidate === root || candidate.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

/**
 * Validates `userPath` and maps it into `workspaceDir`. Missing files are fine (history of a deleted
 * file); only the prefixes that exist are checked for symlinks.
 */
export function resolveWorkspacePath(workspaceDir: string, userPath: string): WorkspacePath {
  const relative = normalizeWorkspacePath(userPath);
  let root: string;
  try {
    root = fs.realpathSync(workspaceDir);
  } catch {
    root = path.resolve(workspaceDir); // workspace gone (stopped agent): nothing on disk to check
  }
  const absolute = relative === "" ? workspaceDir : path.join(workspaceDir, ...relative.split("/"));
  let current = root;
  for (const segment of relative === "" ? [] : relative.split("/")) {
    current = path.join(current, segment);
    let stat: fs.Stats;
    try {
      stat = fs.lstatSync(current);
    } catch {
      break; // does not exist (any more): nothing below it can be a symlink
    }
    if (!stat.isSymbolicLink()) continue;
    let target: string;
    try {
      target = fs.realpathSync(current);
    } catch {
      throw refuse(userPath, "goes through a dangling or looping symlink");
    }
    if (!isInside(root, target)) throw refuse(userPath, "goes through a symlink that resolves outside the workspace");
    current = target;
  }
  return { relative, absolute };
}
