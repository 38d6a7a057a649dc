/**
 * One pass over the workspace: readdir (with file types) per directory and lstat per regular file, handing
 * each file's stat to a visitor (no per-file bookkeeping here: the walk is the hot path of every capture).
 * Symlinks are never followed and never recorded; FIFOs, sockets and devices are skipped. Nothing is read.
 */
import fs from "node:fs";
import type { SkippedPath } from "./chronicle-types.js";
import { errnoCode } from "./workspace-io.js";

export interface ScanResult {
  /** Regular files visited. */
  fileCount: number;
  /** Relative paths of directories that could not be listed; what was recorded below them is kept. */
  unreadableDirs: string[];
  /** Directories and files that could not be listed or stat'ed; their recorded versions are kept. */
  skipped: SkippedPath[];
}

/** `dir` is the relative directory ("" = root, the same string object for all files of one directory). */
export type FileVisitor = (dir: string, name: string, stat: fs.Stats) => void;

/**
 * Walks the tree below `startDir` (relative, "" = the whole workspace). Only the workspace root itself
 * throws when it cannot be listed; a start directory below it that vanished is simply empty.
 */
export function scanWorkspace(rootReal: string, ignore: ReadonlySet<string>, visit: FileVisitor, startDir = ""): ScanResult {
  let fileCount = 0;
  const unreadableDirs: string[] = [];
  const skipped: SkippedPath[] = [];
  const checkIgnore = ignore.size > 0;
  // Parallel stacks of relative ("" = root) and absolute directory paths.
  const relStack: string[] = [startDir];
  const absStack: string[] = [startDir === "" ? rootReal : `${rootReal}/${startDir}`];
  for (let relDir = relStack.pop(); relDir !== undefined; relDir = relStack.pop()) {
    const absDir = absStack.pop() ?? rootReal;
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(absDir, { withFileTypes: true });
    } catch (err) {
      if (relDir === "") throw err; // the workspace itself: the caller decides
      const code = errnoCode(err);
      if (code !== "ENOENT" && code !== "ENOTDIR") {
        unreadableDirs.push(relDir);
        skipped.push({ path: relDir, reason: code });
      }
      continue;
    }
    const relPrefix = relDir === "" ? "" : `${relDir}/`;
    for (const entry of entries) {
      const name = entry.name;
      if (checkIgnore && ignore.has(name)) continue;
      if (entry.isDirectory()) {
        relStack.push(relPrefix + name);
        absStack.push(`${absDir}/${name}`);
      } else if (entry.isFile()) {
        const abs = `${absDir}/${name}`;
        let stat: fs.Stats | undefined;
        try {
          stat = fs.lstatSync(abs, { throwIfNoEntry: false });
        } catch (err) {
          skipped.push({ path: relPrefix + name, reason: errnoCode(err) });
          continue;
        }
        if (stat === undefined) {
          // Vanished since readdir, or a name that is not valid UTF-8 (Node cannot name it, so it is not captured).
          if (name.includes("\uFFFD")) skipped.push({ path: relPrefix + name, reason: "non-UTF-8 file name" });
          continue;
        }
        if (!stat.isFile()) continue; // replaced since readdir
        fileCount++;
        visit(relDir, name, stat);
      }
      // Symlinks, FIFOs, sockets, devices: not captured.
    }
  }
  return { fileCount, unreadableDirs, skipped };
}
