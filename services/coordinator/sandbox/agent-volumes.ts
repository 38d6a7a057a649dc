/**
 * Per-agent disk quota: an agent's workspace, HOME and /tmp live on one ext4 filesystem of the quota's
 * size, so a write past the quota fails with ENOSPC inside the turn (Chronicle's after-turn `quotaBytes`
 * check stays as a report). Layout of `<agentDir>/`:
 *
 *   volume.img   sparse ext4 image (created on first open, grown when the quota grows, never shrunk)
 *   volume.fstab the three mounts below, for one `mount -a`
 *   volume/      its loop mount (nosuid,nodev,noatime); volume/tmp is the agent's /tmp, emptied at every mount
 *   workspace/   bind mount of volume/workspace     home/  bind mount of volume/home
 *
 * Unmounted, `workspace/`, `home/` and `volume/` do not exist (an unmounted workspace must never look like
 * an empty one to a capture). Content found in `workspace/` or `home/` at mount time (an agent from before
 * quotas, a restore from S3 written while unmounted) is moved in, replacing same-named entries.
 * A volume released with `linger` (its instance hibernated) stays mounted for a while, a bounded number of
 * them, so that the agent's wake skips the mount (13-22 ms here); unmountIdle() ends that early.
 * A mount held by a coordinator killed with -9 stays in the kernel: open() reuses a complete one and
 * unmounts a partial one; sweep() unmounts every volume under `<dataDir>/agents` that this coordinator did
 * not open (call it at start, before stale copies are removed).
 *
 * Where it cannot be enforced (not root, no CAP_SYS_ADMIN, no loop devices, no e2fsprogs) `enforced` is
 * false and open() makes plain directories (`<agentDir>/tmp` as tmp): same paths, same ownership rules,
 * no quota. Details and measurements: docs/security.md ("Disk").
 */
import fs from "node:fs";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "../../shared/logger.js";
import { errorMessage } from "../../shared/errors.js";
import { findTools, TOOL_DIRS, type VolumeTools } from "./ext4-image.js";
import { mountsUnder, readMountTable } from "./mount-table.js";
import { formatNewImage, growMounted, mountVolume, removeMountPoints, reuseMounted, unmountUnder, volumePaths, type MounterContext, type VolumePaths } from "./volume-mounter.js";
import { DEFAULT_SPARE_IMAGES, SpareImages } from "./spare-images.js";
import { chownTree, claimDirectory, ownerOf, removeEntries, type Owner } from "./volume-tree.js";

export type { Owner } from "./volume-tree.js";

/** Default per-agent disk quota (workspace + HOME + /tmp). */
export const DEFAULT_AGENT_DISK_BYTES = 2 * 1024 ** 3;
/** Largest volume open() accepts unless told otherwise (operator maxima are applied before, in instance limits). */
export const MAX_AGENT_DISK_BYTES = 16 * 1024 ** 4;
/** Smallest volume open() accepts (ext4 metadata alone takes a few MiB). */
export const MIN_AGENT_DISK_BYTES = 8 * 1024 ** 2;

export interface AgentVolume {
  readonly workspace: string;
  readonly home: string;
  readonly tmp: string;
  /** Size of the filesystem (may exceed the quota asked for: volumes are never shrunk). */
  readonly bytes: number;
  /**
   * Drops this handle; the volume is unmounted when no handle is left, or with `linger` kept mounted
   * for the agent's next open (bounded: the least recently released is unmounted first). Idempotent.
   */
  release(options?: { linger?: boolean }): Promise<void>;
}

export interface AgentVolumes {
  /** False when not root / no CAP_SYS_ADMIN / no loop devices / tools missing: the caller keeps the after-turn check and logs `reason`. */
  readonly enforced: boolean;
  readonly reason: string | undefined;
  /**
   * Makes `<agentDir>/workspace`, `<agentDir>/home` and a scratch `tmp` live on one filesystem of `bytes`
   * (an ext4 image `<agentDir>/volume.img` created sparse on first use, loop-mounted nosuid,nodev at
   * `<agentDir>/volume`, with `<agentDir>/workspace` and `<agentDir>/home` bind mounts of `volume/workspace`
   * and `volume/home`). Existing content of workspace/ and home/ is moved in at mount. `owner` owns
   * workspace, home and tmp (tmp is emptied at every mount). Open while mounted: another handle on the same
   * mount (a larger `bytes` grows it online where the kernel allows, else at the next mount).
   */
  open(agentDir: string, bytes: number, owner?: Owner, signal?: AbortSignal): Promise<AgentVolume>;
  /**
   * For host-side writes to a stopped agent's workspace (a file restore): mounts its existing image at the
   * image's size, ownership untouched. Undefined when the agent has no image (nothing to mount: its
   * workspace directory, if any, is a plain one). With `enforced` false, always undefined.
   */
  openExisting(agentDir: string, signal?: AbortSignal): Promise<AgentVolume | undefined>;
  /** Unmounts `agentDir`'s volume if it only lingers (no handle open), e.g. before its directory is moved. */
  unmountIdle(agentDir: string): Promise<void>;
  /** Unmounts the volumes under `<dataDir>/agents` that this coordinator did not open; returns how many mounts. */
  sweep(dataDir: string): Promise<number>;
  /** Unmounts everything this coordinator mounted. */
  close(): Promise<void>;
}

export interface AgentVolumesOptions {
  logger: Logger;
  mount?: {
    /** false: never mount (plain directories, `reason` says so). Default true. */
    enabled?: boolean;
    /** Where mount, umount, mkfs.ext4, resize2fs, e2fsck, cp, losetup, fstrim are looked up. */
    toolDirs?: string[];
    /** mkfs.ext4 -i: bytes per inode. Default 8192 (262,144 inodes and ~4 % of metadata for 2 GiB). */
    bytesPerInode?: number;
    /** Largest `bytes` open() accepts. Default MAX_AGENT_DISK_BYTES (16 TiB, ext4 with 4 KiB blocks). */
    maxBytes?: number;
    /** How long release() retries an unmount that is busy before detaching lazily. Default 2000 ms. */
    busyRetryMs?: number;
    /** Volumes released with `linger` kept mounted at most (default 64), and for how long (default 30 min). */
    linger?: { count?: number; ms?: number };
    /**
     * Images formatted ahead for new volumes (spare-images.ts), in `dir` (emptied at start; on the agents'
     * filesystem), `count` of them (default DEFAULT_SPARE_IMAGES; 0: none). Without `dir`, none.
     */
    spares?: { dir: string; count?: number };
  };
}

interface Entry {
  paths: VolumePaths;
  /** The paths handed out (under the agentDir as the caller spelled it). */
  given: { workspace: string; home: string; tmp: string };
  bytes: number;
  refs: number;
  cleanup: Promise<void>;
  /** Set while it lingers: unmounts it when its time is up. */
  lingerTimer?: NodeJS.Timeout;
}

const DEFAULT_LINGER = { count: 64, ms: 30 * 60_000 };

const CAP_SYS_ADMIN = 21;

function hasCapability(bit: number): boolean {
  try {
    const line = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync("/proc/self/status", "utf8"));
    return line?.[1] !== undefined && (BigInt(`0x${line[1]}`) & (1n << BigInt(bit))) !== 0n;
  } catch {
    return false;
  }
}

/** Why quotas cannot be enforced here, or the tools to enforce them with. */
function probe(options: AgentVolumesOptions["mount"]): { tools: VolumeTools } | { reason: string } {
  if (options?.enabled === false) return { reason: "disk quotas are disabled by configuration" };
  if (process.platform !== "linux") return { reason: `disk quotas need Linux loop mounts (platform ${process.platform})` };
  if (process.getuid?.() !== 0) return { reason: "the coordinator does not run as root, so it cannot loop-mount per-agent volumes" };
  if (!hasCapability(CAP_SYS_ADMIN)) return { reason: "the coordinator lacks CAP_SYS_ADMIN, so it cannot mount per-agent volumes" };
  try {
    fs.accessSync("/dev/loop-control", fs.constants.R_OK | fs.constants.W_OK);
  } catch {
    return { reason: "no loop devices (/dev/loop-control is missing or not accessible)" };
  }
  const tools = findTools(options?.toolDirs ?? TOOL_DIRS);
  if ("missing" in tools) return { reason: `missing ${tools.missing.join(", ")} (install util-linux, e2fsprogs, coreutils)` };
  return { tools };
}

export function createAgentVolumes(options: AgentVolumesOptions): AgentVolumes {
  const logger = options.logger;
  const maxBytes = options.mount?.maxBytes ?? MAX_AGENT_DISK_BYTES;
  const probed = probe(options.mount);
  const ctx: MounterContext | undefined =
    "tools" in probed ? { tools: probed.tools, logger, bytesPerInode: options.mount?.bytesPerInode ?? 8192, busyRetryMs: options.mount?.busyRetryMs ?? 2000 } : undefined;
  const spares = options.mount?.spares;
  if (ctx && spares && (spares.count ?? DEFAULT_SPARE_IMAGES) > 0) {
    const formatter = { tools: ctx.tools, bytesPerInode: ctx.bytesPerInode };
    ctx.spares = new SpareImages({ dir: spares.dir, count: spares.count ?? DEFAULT_SPARE_IMAGES, format: (image, bytes, signal) => formatNewImage(formatter, image, bytes, signal), logger });
  }
  const reason = "reason" in probed ? probed.reason : undefined;
  /** Mounted volumes by real agent dir. */
  const mounted = new Map<string, Entry>();
  /** Mounted with no handle (released with `linger`), least recently released first. */
  const lingering = new Map<string, Entry>();
  const linger = { ...DEFAULT_LINGER, ...options.mount?.linger };
  /** One operation at a time per agent dir. */
  const locks = new Map<string, Promise<unknown>>();
  let closed = false;

  const serial = <T>(key: string, fn: () => Promise<T>): Promise<T> => {
    const previous = locks.get(key) ?? Promise.resolve();
    const next = previous.then(fn, fn);
    const settled = next.catch(() => undefined);
    locks.set(key, settled);
    void settled.then(() => {
      if (locks.get(key) === settled) locks.delete(key);
    });
    return next;
  };

  const checkBytes = (bytes: number) => {
    if (!Number.isSafeInteger(bytes) || bytes < MIN_AGENT_DISK_BYTES || bytes > maxBytes) {
      throw new ConnectError(`disk quota must be an integer from ${MIN_AGENT_DISK_BYTES} to ${maxBytes} bytes, got ${bytes}`, Code.InvalidArgument);
    }
  };

  const stopLingering = (key: string, entry: Entry) => {
    clearTimeout(entry.lingerTimer);
    entry.lingerTimer = undefined;
    if (lingering.get(key) === entry) lingering.delete(key);
  };

  const unmount = async (key: string, entry: Entry): Promise<void> => {
    if (!ctx) return;
    stopLingering(key, entry);
    await entry.cleanup;
    if (mounted.get(key) === entry) mounted.delete(key);
    try {
      await unmountUnder(ctx, entry.paths.agentDir, entry.paths.volume);
    } finally {
      removeMountPoints(ctx, entry.paths);
    }
    logger.info("agent volume unmounted", { agent_dir: entry.paths.agentDir });
  };

  /** Unmounts `key`'s volume unless a handle was opened on it meanwhile (its own turn in `serial`). */
  const unmountIfIdle = (key: string, entry: Entry) =>
    serial(key, async () => {
      if (entry.refs === 0 && mounted.get(key) === entry) await unmount(key, entry);
    }).catch((err: unknown) => logger.error("could not unmount an agent volume", { agent_dir: key, error: errorMessage(err) }));

  const keepMounted = (key: string, entry: Entry) => {
    lingering.set(key, entry);
    entry.lingerTimer = setTimeout(() => void unmountIfIdle(key, entry), linger.ms).unref();
    for (const [oldest, old] of lingering) {
      if (lingering.size <= linger.count) break;
      stopLingering(oldest, old);
      void unmountIfIdle(oldest, old);
    }
  };

  const handle = (key: string, entry: Entry): AgentVolume => {
    let released = false;
    return {
      ...entry.given,
      bytes: entry.bytes,
      release: (options) => {
        if (released) return Promise.resolve();
        released = true;
        return serial(key, async () => {
          entry.refs--;
          if (entry.refs > 0 || mounted.get(key) !== entry) return;
          if (options?.linger && linger.count > 0 && !closed) keepMounted(key, entry);
          else await unmount(key, entry);
        });
      },
    };
  };

  /** Not enforced: plain directories with the same ownership rules. */
  const openPlain = (agentDir: string, bytes: number, owner: Owner | undefined): AgentVolume => {
    const given = { workspace: path.join(agentDir, "workspace"), home: path.join(agentDir, "home"), tmp: path.join(agentDir, "tmp") };
    const root = process.getuid?.() === 0;
    for (const dir of Object.values(given)) {
      fs.mkdirSync(dir, { recursive: true });
      const current = ownerOf(dir);
      if (root && owner && (current.uid !== owner.uid || current.gid !== owner.gid)) chownTree(dir, owner);
    }
    removeEntries(given.tmp);
    if (root && owner) for (const dir of Object.values(given)) claimDirectory(dir, owner, 0o700);
    return { ...given, bytes, release: () => Promise.resolve() };
  };

  /** Takes `entry` out of the lingering ones for a new handle; false when it was unmounted instead (no longer whole, or too small). */
  const reuseLingering = async (key: string, entry: Entry, bytes: number, owner: Owner | undefined, forAgent: boolean): Promise<boolean> => {
    if (!ctx) return false;
    stopLingering(key, entry);
    if (bytes > entry.bytes) {
      // A larger quota: mounted anew, which grows the image (growing online needs CAP_SYS_RESOURCE).
      await unmount(key, entry);
      return false;
    }
    let reused: ReturnType<typeof reuseMounted>;
    try {
      await entry.cleanup; // the last mount's trash: claiming renames /tmp into it
      reused = reuseMounted(ctx, entry.paths, owner, forAgent);
    } catch (err) {
      await unmount(key, entry); // refs 0 and no longer lingering: nothing else would unmount it
      throw err;
    }
    if (reused) {
      entry.cleanup = entry.cleanup.then(() => reused.cleanup);
      logger.info("agent volume reused (it stayed mounted)", { agent_dir: key });
      return true;
    }
    logger.warn("an agent volume kept mounted is no longer whole; mounting it again", { agent_dir: key });
    await unmount(key, entry);
    return false;
  };

  const openMounted = async (agentDir: string, bytes: number, owner: Owner | undefined, forAgent: boolean, signal?: AbortSignal): Promise<AgentVolume> => {
    if (!ctx) throw new ConnectError("agent volumes are not enforced here", Code.Internal);
    fs.mkdirSync(agentDir, { recursive: true });
    const key = fs.realpathSync(agentDir);
    return serial(key, async () => {
      if (closed) throw new ConnectError("agent volumes are closed", Code.Unavailable);
      let current = mounted.get(key);
      // No handle on it: it lingers, or its unmount is queued behind this open (an eviction, the timer).
      if (current && current.refs === 0 && !(await reuseLingering(key, current, bytes, owner, forAgent))) current = undefined;
      if (current) {
        if (bytes > current.bytes) current.bytes = await growMounted(ctx, current.paths, current.bytes, bytes, signal);
        if (owner) {
          const now = ownerOf(current.paths.workspace);
          if (now.uid !== owner.uid || now.gid !== owner.gid) logger.warn("agent volume is open with another owner; ownership kept", { agent_dir: key });
        }
        current.refs++;
        return handle(key, current);
      }
      const started = performance.now();
      const paths = volumePaths(key);
      const volume = await mountVolume(ctx, paths, bytes, owner, forAgent, signal);
      const entry: Entry = {
        paths,
        given: { workspace: path.join(agentDir, "workspace"), home: path.join(agentDir, "home"), tmp: path.join(agentDir, "volume", "tmp") },
        bytes: volume.bytes,
        refs: 1,
        cleanup: volume.cleanup,
      };
      mounted.set(key, entry);
      logger.info("agent volume mounted", { agent_dir: key, bytes: volume.bytes, adopted: volume.adopted, ms: Math.round(performance.now() - started) });
      return handle(key, entry);
    });
  };

  return {
    enforced: ctx !== undefined,
    reason,

    async open(agentDir, bytes, owner, signal) {
      checkBytes(bytes);
      signal?.throwIfAborted();
      if (!ctx) return openPlain(agentDir, bytes, owner);
      return openMounted(agentDir, bytes, owner, true, signal);
    },

    async openExisting(agentDir, signal) {
      if (!ctx) return undefined;
      const image = fs.lstatSync(path.join(agentDir, "volume.img"), { throwIfNoEntry: false });
      if (!image?.isFile()) return undefined;
      // At least the image's size: never grows, never shrinks it.
      return openMounted(agentDir, Math.max(MIN_AGENT_DISK_BYTES, Math.min(image.size, maxBytes)), undefined, false, signal);
    },

    async unmountIdle(agentDir) {
      if (!ctx) return;
      let key: string;
      try {
        key = fs.realpathSync(agentDir);
      } catch {
        return; // no such directory: nothing mounted there
      }
      // In its turn: after an unmount already queued (an eviction), or an open that takes it.
      await serial(key, async () => {
        const entry = mounted.get(key);
        if (entry && entry.refs === 0) await unmount(key, entry);
      });
    },

    async sweep(dataDir) {
      if (!ctx) return 0;
      let agents: string;
      try {
        agents = fs.realpathSync(path.join(dataDir, "agents"));
      } catch {
        return 0;
      }
      const stale = new Set<string>();
      for (const m of mountsUnder(readMountTable(), agents)) {
        // The agent (or stale copy) directory: the first segment below agents/.
        const first = path.relative(agents, m.mountPoint).split(path.sep)[0];
        if (!first) continue;
        const agentDir = path.join(agents, first);
        if (!mounted.has(agentDir)) stale.add(agentDir);
      }
      let count = 0;
      for (const agentDir of stale) {
        await serial(agentDir, async () => {
          if (mounted.has(agentDir)) return;
          try {
            count += await unmountUnder(ctx, agentDir);
          } catch (err) {
            logger.error("could not unmount a stale agent volume", { agent_dir: agentDir, error: errorMessage(err) });
          }
          if (fs.existsSync(path.join(agentDir, "volume.img"))) removeMountPoints(ctx, volumePaths(agentDir));
        });
      }
      if (count > 0) logger.warn("unmounted agent volumes left by an earlier coordinator", { data_dir: dataDir, mounts: count, agents: stale.size });
      return count;
    },

    async close() {
      closed = true;
      await ctx?.spares?.close();
      await Promise.all(
        [...mounted].map(([key, entry]) =>
          serial(key, async () => {
            if (mounted.get(key) !== entry) return;
            try {
              await unmount(key, entry);
            } catch (err) {
              logger.error("could not unmount an agent volume", { agent_dir: key, error: errorMessage(err) });
            }
          }),
        ),
      );
    },
  };
}
