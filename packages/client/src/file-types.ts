/**
 * Workspace file types returned by the file API, and the normalisers that read the REST answers.
 * Liberal in what they accept (snake_case or camelCase keys, uint64 as numbers or decimal strings,
 * bare arrays or the `{entries}` / `{file}` / `{iterations}` wrappers of the proto JSON form);
 * a body that fits none of these is a protocol error.
 */
import { protocolError } from "./http-request.js";
import { count, isRecord, str, time } from "./json-fields.js";

export interface FileEntry {
  /** Relative to the workspace root. */
  path: string;
  name: string;
  type: "file" | "directory";
  size: number;
  /** RFC 3339, when known. */
  modifiedAt?: string;
  /** The iteration that last changed it, when known. */
  iteration?: number;
}

export interface FileContent {
  path: string;
  content: string;
  encoding: "utf8" | "base64";
  size: number;
  iteration: number;
  /** "sha256:<hex>" of the raw bytes ("" when the server does not say). */
  hash: string;
}

export interface IterationMeta {
  iteration: number;
  /** RFC 3339, when known. */
  timestamp?: string;
  size: number;
  hash: string;
  /** "created" | "modified" | "deleted" ("" when the server does not say). */
  change: string;
}

function list(body: unknown, keys: readonly string[], what: string): unknown[] {
  if (Array.isArray(body)) return body;
  if (isRecord(body)) {
    for (const key of keys) if (Array.isArray(body[key])) return body[key] as unknown[];
    if (keys.every((key) => body[key] === undefined)) return []; // proto JSON omits empty lists
  }
  throw protocolError(what, `expected a list (or {${keys.join("|")}: [...]})`);
}

export function toFileEntries(body: unknown, what: string): FileEntry[] {
  return list(body, ["entries", "files"], what).map((item) => {
    if (!isRecord(item)) throw protocolError(what, "a file entry is not an object");
    const path = str(item, "path");
    if (path === undefined) throw protocolError(what, "a file entry has no path");
    const type = str(item, "type");
    const entry: FileEntry = {
      path,
      name: str(item, "name") ?? path.split("/").filter(Boolean).pop() ?? path,
      type: type === "directory" || type === "dir" ? "directory" : "file",
      size: count(item, "size") ?? 0,
    };
    const modifiedAt = time(item, "modified_at");
    if (modifiedAt !== undefined) entry.modifiedAt = modifiedAt;
    const iteration = count(item, "iteration");
    if (iteration !== undefined) entry.iteration = iteration;
    return entry;
  });
}

export function toFileContent(body: unknown, what: string): FileContent {
  const file = isRecord(body) && isRecord(body.file) ? body.file : body;
  if (!isRecord(file)) throw protocolError(what, "expected a file object");
  const content = str(file, "content");
  if (content === undefined) throw protocolError(what, "the file has no content");
  return {
    path: str(file, "path") ?? "",
    content,
    encoding: str(file, "encoding") === "base64" ? "base64" : "utf8",
    size: count(file, "size") ?? 0,
    iteration: count(file, "iteration") ?? 0,
    hash: str(file, "hash") ?? "",
  };
}

export function toIterations(body: unknown, what: string): IterationMeta[] {
  return list(body, ["iterations", "history"], what).map((item) => {
    if (!isRecord(item)) throw protocolError(what, "an iteration is not an object");
    const iteration = count(item, "iteration");
    if (iteration === undefined) throw protocolError(what, "an iteration has no number");
    const meta: IterationMeta = { iteration, size: count(item, "size") ?? 0, hash: str(item, "hash") ?? "", change: str(item, "change") ?? "" };
    const timestamp = time(item, "timestamp");
    if (timestamp !== undefined) meta.timestamp = timestamp;
    return meta;
  });
}
