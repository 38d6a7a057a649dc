/**
 * The ext4 image behind an agent volume: the system tools it needs, running them, and reading the
 * superblock (size, clean or not) without a process.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import { findSystemTool } from "./system-tools.js";

export const TOOL_DIRS = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

export interface VolumeTools {
  sh: string;
  mount: string;
  umount: string;
  mkfs: string;
  resize2fs: string;
  e2fsck: string;
  cp: string;
  /** Optional: online growth of a mounted volume (LOOP_SET_CAPACITY). */
  losetup: string | undefined;
  /** Optional: gives the image's freed blocks back to the host at release. */
  fstrim: string | undefined;
}

/** The tools, or the names of the missing required ones. */
export function findTools(dirs: readonly string[] = TOOL_DIRS): VolumeTools | { missing: string[] } {
  const required = { sh: "sh", mount: "mount", umount: "umount", mkfs: "mkfs.ext4", resize2fs: "resize2fs", e2fsck: "e2fsck", cp: "cp" } as const;
  const found: Partial<Record<keyof typeof required, string>> = {};
  const missing: string[] = [];
  for (const [key, name] of Object.entries(required) as [keyof typeof required, string][]) {
    const tool = findSystemTool(name, dirs);
    if (tool) found[key] = tool;
    else missing.push(name);
  }
  if (missing.length > 0) return { missing };
  return {
    sh: found.sh ?? "",
    mount: found.mount ?? "",
    umount: found.umount ?? "",
    mkfs: found.mkfs ?? "",
    resize2fs: found.resize2fs ?? "",
    e2fsck: found.e2fsck ?? "",
    cp: found.cp ?? "",
    losetup: findSystemTool("losetup", dirs),
    fstrim: findSystemTool("fstrim", dirs),
  };
}

export interface RunResult {
  code: number | null;
  stderr: string;
}

/** Runs a tool with a fixed environment; stdout is discarded, stderr kept (last 4 KB). */
export function runTool(command: string, args: readonly string[], signal?: AbortSignal): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ["ignore", "ignore", "pipe"],
      env: { PATH: TOOL_DIRS.join(":"), LC_ALL: "C" },
      ...(signal ? { signal } : {}),
    });
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4096)));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stderr: stderr.trim() }));
  });
}

/** Runs a `sh -c` script; its arguments are "$1"… (never interpolated into the script). */
export function runScript(tools: VolumeTools, script: string, args: readonly string[], signal?: AbortSignal): Promise<RunResult> {
  return runTool(tools.sh, ["-c", script, "podium-volume", ...args], signal);
}

export interface Superblock {
  /** Filesystem size in bytes (block count × block size). */
  bytes: number;
  /** Cleanly unmounted (EXT2_VALID_FS set, no EXT2_ERROR_FS). A mounted ext4 without journal reads false. */
  clean: boolean;
}

/** Reads the ext4 superblock at byte 1024 of the image; undefined when it is not an ext2/3/4 image. */
export function readSuperblock(image: string): Superblock | undefined {
  const buffer = Buffer.alloc(1024);
  const fd = fs.openSync(image, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    if (fs.readSync(fd, buffer, 0, 1024, 1024) < 1024) return undefined;
  } finally {
    fs.closeSync(fd);
  }
  if (buffer.readUInt16LE(0x38) !== 0xef53) return undefined;
  const is64bit = (buffer.readUInt32LE(0x60) & 0x80) !== 0;
  const blocks = buffer.readUInt32LE(0x04) + (is64bit ? buffer.readUInt32LE(0x150) * 2 ** 32 : 0);
  const blockSize = 1024 * 2 ** buffer.readUInt32LE(0x18);
  const state = buffer.readUInt16LE(0x3a);
  return { bytes: blocks * blockSize, clean: (state & 1) === 1 && (state & 2) === 0 };
}

/**
 * mkfs.ext4 arguments for a new agent volume: no journal (the workspace is versioned in chronicle.db and
 * a coordinator crash leaves the mount alive; after a host crash the image is checked before mounting),
 * nothing reserved for root, 4 KiB blocks, one inode per `bytesPerInode`, lazy init (the image stays sparse).
 */
export function mkfsArgs(bytesPerInode: number): string[] {
  return ["-q", "-F", "-t", "ext4", "-m", "0", "-b", "4096", "-i", String(bytesPerInode), "-O", "^has_journal", "-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1", "-L", "podium-agent"];
}
