/**
 * Can a user (uid, gid, no supplementary groups) reach a path? bwrap resolves every path it mounts as
 * the agent's outer uid, so each directory on the way must be searchable by it (and the target readable).
 */
import fs from "node:fs";
import path from "node:path";

function allows(stat: fs.Stats, uid: number, gid: number, bit: number): boolean {
  if (uid === 0) return true;
  if (stat.uid === uid) return (stat.mode & (bit << 6)) !== 0;
  if (stat.gid === gid) return (stat.mode & (bit << 3)) !== 0;
  return (stat.mode & bit) !== 0;
}

/** The first path component that `uid`/`gid` cannot search (or read, for the target), or undefined. */
export function unreachableBy(target: string, uid: number, gid: number): string | undefined {
  let absolute: string;
  try {
    absolute = fs.realpathSync(target); // bwrap follows links too: check where they lead
  } catch {
    return target;
  }
  let current = "/";
  for (const part of absolute.split("/").filter(Boolean)) {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(current);
    } catch {
      return current;
    }
    if (!allows(stat, uid, gid, 0o1)) return current;
    current = path.join(current, part);
  }
  try {
    const stat = fs.statSync(current);
    // A directory must be searchable (bwrap binds it; its own entries have their own modes); a file readable.
    if (stat.isDirectory() ? !allows(stat, uid, gid, 0o1) : !allows(stat, uid, gid, 0o4)) return current;
  } catch {
    return current;
  }
  return undefined;
}

/** A uid that owns nothing: what "others" may do is what an agent may do. */
export const NOBODY = 65534;
