/**
 * The coordinator's view of its mounts: /proc/self/mountinfo, parsed, and which loop device backs which
 * image. Read fresh on every call (a few hundred µs): the table is the truth, not what we remember.
 */
import fs from "node:fs";
import path from "node:path";

export interface MountEntry {
  id: number;
  parentId: number;
  /** "major:minor" of the filesystem. */
  device: string;
  /** The directory of that filesystem that is mounted here ("/" for the whole fs, "/workspace" for a bind). */
  root: string;
  mountPoint: string;
  options: string;
  fsType: string;
  source: string;
}

/** mountinfo escapes space, tab, newline and backslash as octal (\040 …). */
function unescapeOctal(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

export function parseMountInfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const fields = line.split(" ");
    const dash = fields.indexOf("-", 6);
    if (dash < 0 || fields.length < dash + 3) continue;
    out.push({
      id: Number(fields[0]),
      parentId: Number(fields[1]),
      device: fields[2] ?? "",
      root: unescapeOctal(fields[3] ?? ""),
      mountPoint: unescapeOctal(fields[4] ?? ""),
      options: fields[5] ?? "",
      fsType: fields[dash + 1] ?? "",
      source: unescapeOctal(fields[dash + 2] ?? ""),
    });
  }
  return out;
}

export function readMountTable(file = "/proc/self/mountinfo"): MountEntry[] {
  return parseMountInfo(fs.readFileSync(file, "utf8"));
}

/** Mounts at or below `dir` (a real path), deepest (and most recent) first: the order to unmount them in. */
export function mountsUnder(table: readonly MountEntry[], dir: string): MountEntry[] {
  const prefix = dir.endsWith(path.sep) ? dir : dir + path.sep;
  return table.filter((m) => m.mountPoint === dir || m.mountPoint.startsWith(prefix)).sort((a, b) => b.mountPoint.split(path.sep).length - a.mountPoint.split(path.sep).length || b.id - a.id);
}

/** The file backing loop device `/dev/loopN`, from sysfs; undefined for anything else. */
export function loopBackingFile(source: string): string | undefined {
  const match = /^\/dev\/(loop\d+)$/.exec(source);
  if (!match) return undefined;
  try {
    // The kernel appends " (deleted)" when the image was removed while attached.
    return fs.readFileSync(`/sys/block/${match[1]}/loop/backing_file`, "utf8").trim();
  } catch {
    return undefined;
  }
}

/**
 * Loop devices backed by `image` (a real path). A lazily detached mount keeps its filesystem alive, and
 * its loop device attached, until the last user goes: such an image must not be checked or resized offline.
 */
export function loopDevicesOf(image: string): string[] {
  let devices: string[];
  try {
    devices = fs.readdirSync("/sys/block").filter((name) => /^loop\d+$/.test(name));
  } catch {
    return [];
  }
  return devices.filter((name) => loopBackingFile(`/dev/${name}`) === image).map((name) => `/dev/${name}`);
}
