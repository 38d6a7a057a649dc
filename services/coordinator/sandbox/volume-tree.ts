/**
 * File-tree work the coordinator does as root inside an agent's volume: taking ownership, moving old
 * content in, throwing scratch away. The agent controls every name below its workspace, home and tmp
 * (it may have planted `evil -> /etc`), so none of this ever follows a symlink:
 * - ownership is changed with fchown on a directory opened O_NOFOLLOW | O_DIRECTORY and with lchown on
 *   `/proc/self/fd/<dir fd>/<name>`: the name is resolved in the directory we opened, never through a
 *   link, and a link itself gets the new owner (lchown), not its target;
 * - content is copied with `cp -a` (never dereferences) into a staging directory the agent cannot see,
 *   then renamed into place; what it replaces is renamed into a trash directory and removed with
 *   `fs.rm` (which unlinks links, never descends through them).
 * These run while no process of the agent is alive (before its spawn), so nothing swaps names under us;
 * the descriptor-relative walk holds even if something did.
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW } = fs.constants;

export interface Owner {
  uid: number;
  gid: number;
}

/** Deeper directories are left as they are (logged by the caller); far beyond any real tree. */
const MAX_DEPTH = 4096;

/** Sets the owner and mode of directory `dir` itself; throws when it is a symlink or not a directory. */
export function claimDirectory(dir: string, owner: Owner | undefined, mode: number): fs.Stats {
  const fd = fs.openSync(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  try {
    if (owner) fs.fchownSync(fd, owner.uid, owner.gid);
    fs.fchmodSync(fd, mode);
    return fs.fstatSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** The owner of directory `dir` (not following a link at `dir`). */
export function ownerOf(dir: string): Owner {
  const stat = fs.lstatSync(dir);
  return { uid: stat.uid, gid: stat.gid };
}

/**
 * lchown of every entry below directory `root` (and of `root`), never following links. Returns how many
 * entries it changed and whether it stopped at MAX_DEPTH somewhere.
 */
export function chownTree(root: string, owner: Owner): { entries: number; truncated: boolean } {
  let entries = 0;
  let truncated = false;
  const walk = (fd: number, depth: number): void => {
    fs.fchownSync(fd, owner.uid, owner.gid);
    entries++;
    const base = `/proc/self/fd/${fd}`;
    for (const entry of fs.readdirSync(base, { withFileTypes: true })) {
      const child = `${base}/${entry.name}`;
      if (!entry.isDirectory()) {
        fs.lchownSync(child, owner.uid, owner.gid);
        entries++;
        continue;
      }
      if (depth >= MAX_DEPTH) {
        truncated = true;
        continue;
      }
      let childFd: number;
      try {
        childFd = fs.openSync(child, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      } catch {
        // Swapped for a link or removed since readdir: give the name itself (never a target) the owner.
        fs.lchownSync(child, owner.uid, owner.gid);
        entries++;
        continue;
      }
      try {
        walk(childFd, depth + 1);
      } finally {
        fs.closeSync(childFd);
      }
    }
  };
  const fd = fs.openSync(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  try {
    walk(fd, 0);
  } finally {
    fs.closeSync(fd);
  }
  return { entries, truncated };
}

/** A unique name in `trash` for something about to be thrown away (the directory is created on demand). */
export function trashPath(trash: string, label: string): string {
  fs.mkdirSync(trash, { recursive: true, mode: 0o700 });
  return path.join(trash, `${label}-${Date.now()}-${randomBytes(4).toString("hex")}`);
}

/**
 * Replaces `target/<name>` with `staged/<name>` for every entry of `staged` (renames on one filesystem);
 * an entry already at the target is moved to `trash` first. `staged` is removed when empty.
 */
export function replaceEntries(staged: string, target: string, trash: string): number {
  let moved = 0;
  for (const name of fs.readdirSync(staged)) {
    const destination = path.join(target, name);
    if (fs.lstatSync(destination, { throwIfNoEntry: false }) !== undefined) fs.renameSync(destination, trashPath(trash, "replaced"));
    fs.renameSync(path.join(staged, name), destination);
    moved++;
  }
  fs.rmdirSync(staged);
  return moved;
}

/** Removes every entry of directory `dir` (links are unlinked, never followed); keeps `dir`. */
export function removeEntries(dir: string): void {
  for (const name of fs.readdirSync(dir)) fs.rmSync(path.join(dir, name), { recursive: true, force: true });
}

/** True when `dir` exists (as a real directory) and holds at least one entry. */
export function hasEntries(dir: string): boolean {
  const stat = fs.lstatSync(dir, { throwIfNoEntry: false });
  if (!stat?.isDirectory()) return false;
  const handle = fs.opendirSync(dir);
  try {
    return handle.readSync() !== null;
  } finally {
    handle.closeSync();
  }
}
