/**
 * Lists the current tree (the manifest) below a directory, `depth` levels deep. Directories are implied by
 * the files below them (empty directories are not versioned, as in git); a directory's size is the total
 * of the files below it, its modifiedAt and iteration the newest of theirs.
 */
import type { FileEntry } from "./chronicle-types.js";
import type { Manifest } from "./manifest.js";

function baseName(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash === -1 ? path : path.slice(slash + 1);
}

function byPath(a: FileEntry, b: FileEntry): number {
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}

/** `dir` must be "" or an existing directory of the manifest (the caller checks). */
export function listTree(manifest: Manifest, dir: string, depth: number): FileEntry[] {
  const prefix = dir === "" ? "" : `${dir}/`;
  const files: FileEntry[] = [];
  const directories = new Map<string, FileEntry>();
  for (const [path, entry] of manifest.entries) {
    if (!path.startsWith(prefix)) continue;
    const modifiedAt = Math.floor(entry.mtimeMs);
    // Walk down the remainder: every directory on the way within `depth` gets this file's totals.
    let level = 1;
    let slash = path.indexOf("/", prefix.length);
    for (; slash !== -1 && level <= depth; slash = path.indexOf("/", slash + 1), level++) {
      const dirPath = path.slice(0, slash);
      const existing = directories.get(dirPath);
      if (existing) {
        existing.size += entry.size;
        existing.modifiedAt = Math.max(existing.modifiedAt, modifiedAt);
        existing.iteration = Math.max(existing.iteration, entry.iteration);
      } else {
        directories.set(dirPath, {
          path: dirPath,
          name: baseName(dirPath),
          type: "directory",
          size: entry.size,
          modifiedAt,
          iteration: entry.iteration,
        });
      }
    }
    if (slash === -1 && level <= depth) {
      files.push({ path, name: baseName(path), type: "file", size: entry.size, modifiedAt, iteration: entry.iteration });
    }
  }
  return [...directories.values(), ...files].sort(byPath);
}
