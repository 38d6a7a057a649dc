/**
 * The only places Chronicle opens workspace files. The agent owns the workspace and may swap a file for a
 * symlink or FIFO at any moment, so:
 * - reads open with O_NOFOLLOW | O_NONBLOCK (a symlink fails, a FIFO does not block), check with fstat
 *   that the handle is a regular file and, on Linux, with /proc/self/fd that it really lies inside the
 *   workspace (catches a parent directory swapped for a symlink after the scan);
 * - writes (restore) refuse symlinked or non-directory parents, write a temp file created with
 *   O_EXCL | O_NOFOLLOW next to the target and rename it over the target (atomic; replaces a symlink at
 *   the target instead of following it).
 * - what the platform writes belongs to the owner of the workspace root (the agent's uid when the
 *   coordinator runs as root and agents run as their own users), so the agent can change it: the temp
 *   file is fchown'ed before the rename, a created parent directory lchown'ed (never a link's target).
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";

const PROC_FD = process.platform === "linux" && fs.existsSync("/proc/self/fd");
const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = fs.constants;

export type OpenResult = { ok: true; fd: number; stat: fs.Stats } | { ok: false; gone: boolean; reason: string };

/**
 * The errno code of a Node fs error ("ENOENT", "EACCES", …), else the error's message. Duck-typed, not
 * `instanceof Error`: errors from Node core come from another realm under jest's VM modules.
 */
export function errnoCode(err: unknown): string {
  if (typeof err === "object" && err !== null) {
    if ("code" in err && typeof err.code === "string") return err.code;
    if ("message" in err && typeof err.message === "string") return err.message;
  }
  return "EIO";
}

function isInside(root: string, candidate: string): boolean {
  return candidate === root || candidate.startsWith(root + path.sep);
}

/** Where an open descriptor really points, when the platform can tell. */
function fdPath(fd: number): string | undefined {
  if (!PROC_FD) return undefined;
  try {
    return fs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return undefined;
  }
}

/** Opens a workspace file for capture. `gone` means it vanished or stopped being a regular file. */
export function openForCapture(rootReal: string, absolute: string): OpenResult {
  let fd: number;
  try {
    fd = fs.openSync(absolute, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (err) {
    const code = errnoCode(err);
    // ELOOP: became a symlink; ENOENT/ENOTDIR: removed or parent replaced.
    return { ok: false, gone: code === "ENOENT" || code === "ENOTDIR" || code === "ELOOP", reason: code };
  }
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) throw Object.assign(new Error("not a regular file"), { code: "ENOTREG" });
    const real = fdPath(fd);
    if (real !== undefined && !isInside(rootReal, real)) throw Object.assign(new Error("outside"), { code: "EXDEV" });
    return { ok: true, fd, stat };
  } catch (err) {
    fs.closeSync(fd);
    const code = errnoCode(err);
    return { ok: false, gone: code === "ENOTREG" || code === "EXDEV", reason: code };
  }
}

/**
 * Who files written into the workspace should belong to: the owner of its root, when we are root and that
 * is someone else (a process that is not root can only create files it owns). undefined: leave as created.
 */
export function workspaceOwner(rootReal: string): { uid: number; gid: number } | undefined {
  if (process.geteuid?.() !== 0) return undefined;
  const root = fs.statSync(rootReal);
  if (root.uid === 0 && root.gid === 0) return undefined;
  return { uid: root.uid, gid: root.gid };
}

function failed(relative: string, why: string): ConnectError {
  return new ConnectError(`cannot write ${JSON.stringify(relative)} into the workspace: ${why}`, Code.FailedPrecondition);
}

/** Creates missing parent directories (given to `owner`); refuses parents that are symlinks or files. */
function ensureParents(rootReal: string, relative: string, owner: { uid: number; gid: number } | undefined): string {
  let dir = rootReal;
  const parents = relative.split("/").slice(0, -1);
  for (const segment of parents) {
    dir = path.join(dir, segment);
    const stat = fs.lstatSync(dir, { throwIfNoEntry: false });
    if (stat === undefined) {
      fs.mkdirSync(dir);
      // lchown: had it been swapped for a link since mkdir, the link (not its target) changes owner.
      if (owner) fs.lchownSync(dir, owner.uid, owner.gid);
    } else if (stat.isSymbolicLink()) throw failed(relative, `'${path.relative(rootReal, dir)}' is a symlink`);
    else if (!stat.isDirectory()) throw failed(relative, `'${path.relative(rootReal, dir)}' is not a directory`);
  }
  return dir;
}

/**
 * Atomically replaces (or creates) `relative` with `data`; keeps the permission bits of a file it replaces;
 * the result belongs to the owner of the workspace root (see workspaceOwner).
 */
export function writeWorkspaceFile(rootReal: string, relative: string, data: Buffer, owner = workspaceOwner(rootReal)): fs.Stats {
  const dir = ensureParents(rootReal, relative, owner);
  const target = path.join(rootReal, ...relative.split("/"));
  const current = fs.lstatSync(target, { throwIfNoEntry: false });
  if (current?.isDirectory()) throw failed(relative, "it is a directory now");
  const mode = current?.isFile() ? current.mode & 0o7777 : 0o644;
  const temp = path.join(dir, `.chronicle-restore-${randomBytes(6).toString("hex")}`);
  const fd = fs.openSync(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
  let renamed = false;
  try {
    const real = fdPath(fd);
    if (real !== undefined && !isInside(rootReal, real)) throw failed(relative, "a parent directory was replaced during the write");
    let written = 0;
    while (written < data.length) written += fs.writeSync(fd, data, written, data.length - written);
    // Owner first: a chown by root clears set-uid/gid bits, which the fchmod then restores.
    if (owner) fs.fchownSync(fd, owner.uid, owner.gid);
    fs.fchmodSync(fd, mode);
    fs.closeSync(fd);
    fs.renameSync(temp, target);
    renamed = true;
    return fs.lstatSync(target);
  } finally {
    if (!renamed) {
      try {
        fs.closeSync(fd);
      } catch {
        // already closed
      }
      fs.rmSync(temp, { force: true });
    }
  }
}
