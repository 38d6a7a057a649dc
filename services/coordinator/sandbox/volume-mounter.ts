/**
 * Mounting and unmounting one agent's volume: `<agentDir>/volume.img` (ext4) loop-mounted nosuid,nodev at
 * `<agentDir>/volume`, with `<agentDir>/workspace` and `<agentDir>/home` bind mounts of `volume/workspace`
 * and `volume/home` (binds inherit nosuid,nodev,noatime), and `volume/tmp` as the agent's /tmp.
 * A mount is one process, `mount -T <agentDir>/volume.fstab -a` (the loop mount and both binds), plus
 * `mkfs.ext4 -d` for a new agent unless it takes a spare image formatted ahead (spare-images.ts); an unmount
 * is one `sh -c` (fstrim, umount). Checking or growing an image and moving old content in add a process
 * each, only when needed.
 * docs/security.md ("Disk") has the rules; agent-volumes.ts the lifecycle around this.
 */
import fs from "node:fs";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "../../shared/logger.js";
import { mkfsArgs, readSuperblock, runScript, runTool, type RunResult, type VolumeTools } from "./ext4-image.js";
import { loopBackingFile, loopDevicesOf, mountsUnder, readMountTable, type MountEntry } from "./mount-table.js";
import type { SpareImages } from "./spare-images.js";
import { chownTree, claimDirectory, hasEntries, ownerOf, replaceEntries, trashPath, type Owner } from "./volume-tree.js";

export interface VolumePaths {
  /** The agent directory, real path (what /proc/self/mountinfo shows). */
  agentDir: string;
  image: string;
  /** The three mounts as an fstab, for one `mount -a`. */
  fstab: string;
  volume: string;
  workspace: string;
  home: string;
  tmp: string;
  /** Inside the volume, invisible to the agent: replaced content and old tmp, removed in the background. */
  trash: string;
}

export function volumePaths(agentDir: string): VolumePaths {
  const volume = path.join(agentDir, "volume");
  return {
    agentDir,
    image: path.join(agentDir, "volume.img"),
    fstab: path.join(agentDir, "volume.fstab"),
    volume,
    workspace: path.join(agentDir, "workspace"),
    home: path.join(agentDir, "home"),
    tmp: path.join(volume, "tmp"),
    trash: path.join(volume, ".podium-trash"),
  };
}

export interface MounterContext {
  tools: VolumeTools;
  logger: Logger;
  bytesPerInode: number;
  /** How long an unmount that finds the volume busy is retried before it is detached lazily. */
  busyRetryMs: number;
  /** Images formatted ahead for new volumes. */
  spares?: SpareImages;
}

export interface MountedVolume {
  /** Filesystem size. */
  bytes: number;
  /** The removal of the trash started by this mount. */
  cleanup: Promise<void>;
  adopted: boolean;
}

/** Mount options of the loop mount; the binds inherit them. */
const MOUNT_OPTIONS = "loop,nosuid,nodev,noatime";
const SHARED_DIRS = ["workspace", "home"] as const;
const VOLUME_DIRS = [...SHARED_DIRS, "tmp"] as const;

/** fstab fields escape space, tab, newline and backslash in octal (libmount unescapes them). */
function fstabField(value: string): string {
  return value.replace(/[\\ \t\n]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, "0")}`);
}

/** Writes `<agentDir>/volume.fstab`: the loop mount, then the binds (`mount -a` skips what is mounted). */
function writeFstab(paths: VolumePaths): void {
  const line = (source: string, target: string, type: string, options: string) => [source, target, type, options].map(fstabField).join(" ") + " 0 0\n";
  const text = line(paths.image, paths.volume, "ext4", MOUNT_OPTIONS) + SHARED_DIRS.map((name) => line(path.join(paths.volume, name), paths[name], "none", "bind")).join("");
  fs.writeFileSync(paths.fstab, text, { mode: 0o600 });
}

/**
 * Creates the filesystem of an image file with empty workspace, home and tmp directories (`mkfs.ext4 -d`
 * from a template directory made next to it), so the first mount needs no other process.
 */
async function format(ctx: Pick<MounterContext, "tools" | "bytesPerInode">, image: string, signal?: AbortSignal): Promise<void> {
  const template = fs.mkdtempSync(path.join(path.dirname(image), ".volume-template-"));
  try {
    for (const name of VOLUME_DIRS) fs.mkdirSync(path.join(template, name), { mode: 0o700 });
    const result = await runTool(ctx.tools.mkfs, [...mkfsArgs(ctx.bytesPerInode), "-d", template, image], signal);
    if (result.code !== 0) throw failure(`formatting agent volume ${image}`, result);
  } finally {
    fs.rmSync(template, { recursive: true, force: true });
  }
}

/** A new formatted image of `bytes` at `image` (a path that must not exist): what a spare is made of (spare-images.ts). */
export async function formatNewImage(ctx: Pick<MounterContext, "tools" | "bytesPerInode">, image: string, bytes: number, signal?: AbortSignal): Promise<void> {
  createImageFile(image, bytes);
  await format(ctx, image, signal);
}

/** The volume's own directories exist and are real directories (created when missing). */
function ensureVolumeDirs(paths: VolumePaths): void {
  for (const name of VOLUME_DIRS) {
    const dir = path.join(paths.volume, name);
    const stat = fs.lstatSync(dir, { throwIfNoEntry: false });
    if (stat === undefined) fs.mkdirSync(dir, { mode: 0o700 });
    else if (!stat.isDirectory()) throw new ConnectError(`agent volume ${paths.image}: ${name} is not a directory`, Code.FailedPrecondition);
  }
}

function failure(what: string, result: RunResult, code = Code.Internal): ConnectError {
  return new ConnectError(`${what} failed (exit ${String(result.code)}): ${result.stderr.split("\n").slice(-3).join(" | ")}`, code);
}

/** Builds a `sh -c` script whose arguments are positional parameters, never interpolated. */
class Script {
  readonly lines: string[];
  readonly args: string[] = [];
  constructor(stopOnError = true) {
    this.lines = stopOnError ? ["set -e"] : [];
  }
  arg(value: string): string {
    this.args.push(value);
    return `"\${${this.args.length}}"`;
  }
  run(tools: VolumeTools, signal?: AbortSignal): Promise<RunResult> {
    return runScript(tools, this.lines.join("\n"), this.args, signal);
  }
}

/** `workspace`, `home` and `volume` on the host must be plain directories (or absent) before we mount on them. */
function assertMountPoints(paths: VolumePaths): void {
  for (const dir of [paths.volume, paths.workspace, paths.home]) {
    const stat = fs.lstatSync(dir, { throwIfNoEntry: false });
    if (stat === undefined) fs.mkdirSync(dir, { mode: 0o755 });
    else if (!stat.isDirectory()) throw new ConnectError(`cannot mount the agent volume: ${dir} is not a directory`, Code.FailedPrecondition);
  }
}

/** True when `mounts` (everything under the agent dir) is exactly a complete volume of this agent's image. */
function isCompleteVolume(mounts: readonly MountEntry[], paths: VolumePaths): boolean {
  if (mounts.length !== 3) return false;
  const at = (dir: string) => mounts.find((m) => m.mountPoint === dir);
  const volume = at(paths.volume);
  if (volume?.root !== "/" || volume.fsType !== "ext4" || loopBackingFile(volume.source) !== paths.image) return false;
  return SHARED_DIRS.every((name) => {
    const bind = at(paths[name]);
    return bind !== undefined && bind.device === volume.device && bind.root === `/${name}`;
  });
}

/** Unmounts everything at or below `dir`, deepest first; retries while busy, then detaches lazily. */
export async function unmountUnder(ctx: MounterContext, dir: string, trim?: string): Promise<number> {
  const first = mountsUnder(readMountTable(), dir);
  if (first.length === 0) return 0;
  const started = Date.now();
  let trimmed = trim === undefined || ctx.tools.fstrim === undefined;
  for (;;) {
    const left = mountsUnder(readMountTable(), dir);
    if (left.length === 0) return first.length;
    const points = left.map((m) => m.mountPoint);
    let result: RunResult;
    if (!trimmed && trim !== undefined && ctx.tools.fstrim !== undefined) {
      // Gives blocks the agent freed back to the host (the image is sparse), then unmounts: one process.
      const script = new Script(false);
      script.lines.push(`${script.arg(ctx.tools.fstrim)} -- ${script.arg(trim)} >/dev/null 2>&1 || :`);
      script.lines.push(`exec ${script.arg(ctx.tools.umount)} -- ${points.map((p) => script.arg(p)).join(" ")}`);
      result = await script.run(ctx.tools);
      trimmed = true;
    } else {
      result = await runTool(ctx.tools.umount, ["--", ...points]);
    }
    if (result.code === 0) continue;
    if (Date.now() - started >= ctx.busyRetryMs) {
      // Still busy (a process left behind holds a file): detach now, the kernel frees it when the last user
      // goes. Mounting the image again meanwhile reuses its loop device (util-linux), so it is never mounted twice.
      const lazy = await runTool(ctx.tools.umount, ["-l", "--", ...points]);
      ctx.logger.warn("agent volume busy at unmount; detached lazily", { dir, error: result.stderr, lazy_exit: lazy.code });
      return first.length;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Removes the (empty, unmounted) mount points, so an unmounted workspace is absent, never an empty directory. */
export function removeMountPoints(ctx: MounterContext, paths: VolumePaths): void {
  const mounted = new Set(mountsUnder(readMountTable(), paths.agentDir).map((m) => m.mountPoint));
  for (const dir of [paths.workspace, paths.home, paths.volume]) {
    if (mounted.has(dir)) continue;
    try {
      fs.rmdirSync(dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOENT") ctx.logger.warn("agent volume mount point not removed", { dir, error: code ?? String(err) });
    }
  }
}

/** Creates the image file sparse (never through a link), or fails when it exists. */
function createImageFile(image: string, bytes: number): void {
  const fd = fs.openSync(image, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
  try {
    fs.ftruncateSync(fd, bytes);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Makes a new image (a spare formatted ahead, or one formatted now), or checks an image that was not cleanly
 * unmounted (host crash) and grows it offline to `bytes`. `mkfs`: the filesystem is new.
 */
async function prepareImage(ctx: MounterContext, paths: VolumePaths, bytes: number, signal?: AbortSignal): Promise<{ mkfs: boolean; size: number }> {
  const stat = fs.lstatSync(paths.image, { throwIfNoEntry: false });
  const formatted = async (image: number) => {
    await format(ctx, paths.image, signal);
    return { mkfs: true, size: Math.floor(image / 4096) * 4096 };
  };
  if (stat === undefined) {
    // A spare is what formatting here would make: new, of exactly this size (whole 4 KiB blocks).
    if (bytes % 4096 === 0 && ctx.spares?.take(paths.image, bytes)) return { mkfs: true, size: bytes };
    createImageFile(paths.image, bytes);
    return formatted(bytes);
  }
  if (!stat.isFile()) throw new ConnectError(`agent volume image ${paths.image} is not a regular file`, Code.FailedPrecondition);
  let superblock = readSuperblock(paths.image);
  const attached = loopDevicesOf(paths.image);
  if (attached.length > 0) {
    // Its filesystem is still alive in the kernel (an unmount that was busy and detached lazily): mounting
    // it again reuses that loop device and that filesystem. Never fsck, resize or format a live filesystem.
    if (superblock === undefined) throw new ConnectError(`agent volume image ${paths.image} is attached to ${attached.join(", ")} but holds no filesystem`, Code.FailedPrecondition);
    if (bytes > superblock.bytes) ctx.logger.warn("agent volume still in use by a detached mount; it grows at a later mount", { image: paths.image, devices: attached.join(","), quota: bytes });
    return { mkfs: false, size: superblock.bytes };
  }
  if (superblock === undefined) {
    // Never formatted (a crash between create and mkfs): nothing to keep.
    ctx.logger.warn("agent volume image has no filesystem; formatting it", { image: paths.image });
    fs.truncateSync(paths.image, Math.max(bytes, stat.size));
    return formatted(Math.max(bytes, stat.size));
  }
  if (!superblock.clean) {
    const result = await runTool(ctx.tools.e2fsck, ["-f", "-y", paths.image], signal);
    // 0 clean, 1 errors corrected, 2 corrected (reboot advised, n/a here); 4 and above: not usable.
    if (result.code === null || result.code >= 4) throw failure(`checking agent volume ${paths.image}`, result, Code.DataLoss);
    ctx.logger.warn("agent volume was not cleanly unmounted; checked it", { image: paths.image, e2fsck_exit: result.code });
    superblock = readSuperblock(paths.image) ?? superblock;
  }
  if (bytes > superblock.bytes || stat.size > superblock.bytes) {
    if (bytes > stat.size) fs.truncateSync(paths.image, bytes);
    // Offline: online growth needs CAP_SYS_RESOURCE, which root in many containers lacks. -f: the image was
    // cleanly unmounted (or just checked), which is what resize2fs's own check wants to know.
    const result = await runTool(ctx.tools.resize2fs, ["-f", paths.image], signal);
    if (result.code !== 0) throw failure(`growing agent volume ${paths.image}`, result);
    const grown = readSuperblock(paths.image)?.bytes ?? bytes;
    ctx.logger.info("agent volume grown", { image: paths.image, from: superblock.bytes, to: grown });
    return { mkfs: false, size: grown };
  } else if (bytes < superblock.bytes) {
    ctx.logger.info("agent volume is larger than its quota; kept (shrinking needs an offline resize that may not fit the content)", {
      image: paths.image,
      bytes: superblock.bytes,
      quota: bytes,
    });
  }
  return { mkfs: false, size: superblock.bytes };
}

/** Copies `source`'s content into the volume's `name` directory (cp -a into staging, then renames), then empties `source`. */
async function moveIn(ctx: MounterContext, paths: VolumePaths, name: string, source: string, owner: Owner | undefined, signal?: AbortSignal): Promise<void> {
  const staging = trashPath(paths.volume, `.podium-incoming-${name}`);
  const copied = await runTool(ctx.tools.cp, ["-a", "-x", "-T", "--", source, staging], signal);
  if (copied.code !== 0) {
    fs.rmSync(staging, { recursive: true, force: true });
    const full = /No space left|Disk quota/.test(copied.stderr);
    throw failure(`moving the existing ${name} of ${paths.agentDir} into its volume${full ? " (it is larger than the disk quota)" : ""}`, copied, full ? Code.ResourceExhausted : Code.Internal);
  }
  if (owner) chownTree(staging, owner);
  const moved = replaceEntries(staging, path.join(paths.volume, name), paths.trash);
  for (const entry of fs.readdirSync(source)) fs.rmSync(path.join(source, entry), { recursive: true, force: true });
  ctx.logger.info("moved existing content into the agent volume", { agent_dir: paths.agentDir, dir: name, entries: moved });
}

/**
 * For the agent: gives workspace and home to `owner` (the whole tree when it belonged to someone else)
 * and a fresh, empty tmp. For the host (`agent` false: a file restore of a stopped agent) nothing changes.
 */
function claim(ctx: MounterContext, paths: VolumePaths, owner: Owner | undefined, created: boolean, agent: boolean): void {
  claimDirectory(paths.volume, undefined, 0o711);
  if (!agent) return;
  for (const name of SHARED_DIRS) {
    const dir = path.join(paths.volume, name);
    const current = ownerOf(dir);
    if (owner && (current.uid !== owner.uid || current.gid !== owner.gid)) {
      const { entries, truncated } = chownTree(dir, owner);
      if (!created) ctx.logger.info("agent volume given to a new owner", { dir, uid: owner.uid, gid: owner.gid, entries, truncated });
    }
    claimDirectory(dir, owner, 0o700);
  }
  if (!created) {
    fs.renameSync(paths.tmp, trashPath(paths.trash, "tmp"));
    fs.mkdirSync(paths.tmp);
  }
  claimDirectory(paths.tmp, owner, 0o700);
}

/** Reuses a complete volume left mounted (a coordinator killed with -9), or clears what is left of one. */
async function takeOverLeftovers(ctx: MounterContext, paths: VolumePaths): Promise<boolean> {
  const leftovers = mountsUnder(readMountTable(), paths.agentDir);
  if (leftovers.length === 0) return false;
  if (isCompleteVolume(leftovers, paths)) {
    ctx.logger.info("reusing an agent volume left mounted", { agent_dir: paths.agentDir });
    return true;
  }
  ctx.logger.warn("unmounting an incomplete agent volume left mounted", { agent_dir: paths.agentDir, mounts: leftovers.map((m) => m.mountPoint).join(",") });
  await unmountUnder(ctx, paths.agentDir);
  return false;
}

/**
 * Mounts (or takes over) the agent's volume. `forAgent` false: for host-side access to a stopped agent
 * (ownership and tmp left as they are).
 */
export async function mountVolume(ctx: MounterContext, paths: VolumePaths, bytes: number, owner: Owner | undefined, forAgent: boolean, signal?: AbortSignal): Promise<MountedVolume> {
  const adopted = await takeOverLeftovers(ctx, paths);
  try {
    signal?.throwIfAborted();
    let mkfs = false;
    let size = adopted ? (readSuperblock(paths.image)?.bytes ?? 0) : 0;
    if (!adopted) {
      assertMountPoints(paths);
      ({ mkfs, size } = await prepareImage(ctx, paths, bytes, signal));
      writeFstab(paths);
      const migrate = SHARED_DIRS.filter((name) => hasEntries(paths[name]));
      // Usually one process for all three mounts. Step by step when content must move in first (the binds
      // would hide it) or when that failed (an image without its directories: the binds cannot find them).
      const fast = migrate.length === 0 ? await runTool(ctx.tools.mount, ["-T", paths.fstab, "-a"], signal) : undefined;
      if (fast?.code !== 0) {
        if (fast) await unmountUnder(ctx, paths.agentDir);
        const loop = await runTool(ctx.tools.mount, ["-o", MOUNT_OPTIONS, "--", paths.image, paths.volume], signal);
        if (loop.code !== 0) throw failure(`mounting the agent volume ${paths.image}`, loop);
        ensureVolumeDirs(paths);
        for (const name of migrate) await moveIn(ctx, paths, name, paths[name], owner, signal);
        const binds = await runTool(ctx.tools.mount, ["-T", paths.fstab, "-a"], signal);
        if (binds.code !== 0) throw failure(`binding the agent volume of ${paths.agentDir}`, binds);
      }
    } else if (bytes > size) {
      size = await growMounted(ctx, paths, size, bytes, signal);
    } else if (bytes < size) {
      ctx.logger.info("agent volume is larger than its quota; kept", { image: paths.image, bytes: size, quota: bytes });
    }
    // Binds of anything but the volume's own directories (a planted link resolved by mount) fail this check.
    if (!isCompleteVolume(mountsUnder(readMountTable(), paths.agentDir), paths)) {
      throw new ConnectError(`agent volume of ${paths.agentDir} is not mounted as expected after mounting it`, Code.Internal);
    }
    claim(ctx, paths, owner, mkfs, forAgent);
    return { bytes: size, cleanup: emptyTrash(ctx, paths), adopted };
  } catch (err) {
    await unmountUnder(ctx, paths.agentDir).catch(() => 0);
    removeMountPoints(ctx, paths);
    throw err;
  }
}

/**
 * Hands a volume that stayed mounted after its agent's process ended (a lingering one, agent-volumes.ts) to
 * its next user. For the agent's next process (`forAgent`), as a new mount would: the agent owns workspace
 * and home, and /tmp starts empty. False when it is no longer mounted as a whole (the caller unmounts what
 * is left and mounts anew). Call once the previous mount's trash was emptied (`cleanup`).
 */
export function reuseMounted(ctx: MounterContext, paths: VolumePaths, owner: Owner | undefined, forAgent: boolean): { cleanup: Promise<void> } | false {
  if (!isCompleteVolume(mountsUnder(readMountTable(), paths.agentDir), paths)) return false;
  if (!forAgent) return { cleanup: Promise.resolve() };
  claim(ctx, paths, owner, false, true);
  return { cleanup: emptyTrash(ctx, paths) };
}

function emptyTrash(ctx: MounterContext, paths: VolumePaths): Promise<void> {
  return fs.promises.rm(paths.trash, { recursive: true, force: true }).catch((err: unknown) => {
    ctx.logger.warn("could not empty the agent volume's trash", { dir: paths.trash, error: String(err) });
  });
}

/**
 * Grows a mounted volume online (truncate, LOOP_SET_CAPACITY, resize2fs). Needs CAP_SYS_RESOURCE; without
 * it the image is left larger than its filesystem and the next mount grows it offline. Returns the size.
 */
export async function growMounted(ctx: MounterContext, paths: VolumePaths, before: number, bytes: number, signal?: AbortSignal): Promise<number> {
  if (bytes <= before) return before;
  const volume = readMountTable().find((m) => m.mountPoint === paths.volume);
  if (!volume || ctx.tools.losetup === undefined) return before;
  if (fs.statSync(paths.image).size < bytes) fs.truncateSync(paths.image, bytes);
  const script = new Script();
  script.lines.push(`${script.arg(ctx.tools.losetup)} -c ${script.arg(volume.source)}`, `${script.arg(ctx.tools.resize2fs)} -- ${script.arg(volume.source)}`);
  const result = await script.run(ctx.tools, signal);
  if (result.code !== 0) {
    ctx.logger.warn("agent volume could not grow while mounted; it grows at its next mount", { image: paths.image, quota: bytes, error: result.stderr.split("\n").slice(-1)[0] });
    return before;
  }
  // The kernel writes the new superblock back to the image lazily: report what was asked for.
  ctx.logger.info("agent volume grown while mounted", { image: paths.image, from: before, to: bytes });
  return bytes;
}
