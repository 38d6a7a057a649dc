/**
 * Reads where a SQLite database's WAL ends, and Litestream's local state next to it, without
 * opening the database (no locks, no SQL): a few bytes of the `-shm` wal-index header, of the shadow
 * WAL files, and the generation file.
 *
 * - `<db>-shm` starts with two copies of the 48-byte WalIndexHdr: szPage (u16 at 14, 1 = 65536),
 *   mxFrame (u32 at 16, host byte order: the last valid frame), aSalt (8 raw bytes at 32, copied from
 *   the WAL header). The WAL ends at 32 + mxFrame * (24 + pageSize) bytes, the offset Litestream uses
 *   in its positions. The salt changes whenever the WAL restarts (a new Litestream "index").
 * - Litestream keeps `.<name>-litestream/generation` (current generation id) and the shadow WAL
 *   `.<name>-litestream/generations/<generation>/wal/<index, 8 hex>.wal`, whose first 32 bytes are the
 *   WAL header of that index (salt at 16..24).
 */
import fs from "node:fs";
import path from "node:path";

export interface LocalWalPosition {
  /** Hex of the 8 salt bytes: identifies one run of the WAL between restarts. */
  salt: string;
  /** Frames in the WAL (0 right after a restart). */
  frames: number;
  /** Byte offset where the WAL ends. */
  end: number;
}

/** fds this process already has open, by the path they point at (checked at every use: fds are reused). */
const ownFds = new Map<string, number>();

function fdTarget(fd: number): string | undefined {
  try {
    return fs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return undefined;
  }
}

/** An fd of this process (SQLite's) open on `file`, if any; scans /proc/self/fd only when the cached one moved. */
function ownFd(file: string): number | undefined {
  let target: string;
  try {
    target = fs.realpathSync(file);
  } catch {
    return undefined;
  }
  const cached = ownFds.get(target);
  if (cached !== undefined && fdTarget(cached) === target) return cached;
  ownFds.delete(target);
  let names: string[];
  try {
    names = fs.readdirSync("/proc/self/fd");
  } catch {
    return undefined;
  }
  for (const name of names) {
    const fd = Number(name);
    if (fdTarget(fd) === target) {
      ownFds.set(target, fd);
      return fd;
    }
  }
  return undefined;
}

function readBytes(file: string, length: number, position = 0): Buffer | undefined {
  // SQLite's locks are POSIX record locks, which a process loses on *any* close of the file. Opening and
  // closing the `-shm` of a database this process has open (the coordinator has its agents' stores open)
  // dropped SQLite's locks on it: Litestream, opening the database next, believed itself alone, truncated
  // the wal-index, and the coordinator died of SIGBUS on its mapping. So read through SQLite's own fd
  // (pread: no open, no close) when there is one.
  const shared = ownFd(file);
  if (shared !== undefined) {
    try {
      const buffer = Buffer.alloc(length);
      return fs.readSync(shared, buffer, 0, length, position) === length ? buffer : undefined;
    } catch {
      return undefined;
    }
  }
  let fd: number;
  try {
    fd = fs.openSync(file, "r");
  } catch {
    return undefined;
  }
  try {
    const buffer = Buffer.alloc(length);
    const read = fs.readSync(fd, buffer, 0, length, position);
    return read === length ? buffer : undefined;
  } catch {
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}

/** Where the WAL of `dbPath` ends, from its `-shm` header; undefined when there is no usable header. */
export function readLocalWalPosition(dbPath: string): LocalWalPosition | undefined {
  for (let attempt = 0; attempt < 3; attempt++) {
    const header = readBytes(`${dbPath}-shm`, 96);
    if (!header) return undefined;
    // A writer updates copy 1 then copy 2; equal copies are a consistent snapshot.
    if (!header.subarray(0, 48).equals(header.subarray(48, 96))) continue;
    if (header[12] !== 1) return undefined; // isInit
    const rawPage = header.readUInt16LE(14);
    const pageSize = rawPage === 1 ? 65536 : rawPage;
    const frames = header.readUInt32LE(16);
    return { salt: header.subarray(32, 40).toString("hex"), frames, end: 32 + frames * (24 + pageSize) };
  }
  return undefined;
}

function litestreamDir(dbPath: string): string {
  return path.join(path.dirname(dbPath), `.${path.basename(dbPath)}-litestream`);
}

/** The current Litestream generation of `dbPath`, from its local state. */
export function readLocalGeneration(dbPath: string): string | undefined {
  try {
    const text = fs.readFileSync(path.join(litestreamDir(dbPath), "generation"), "utf8").trim();
    return /^[0-9a-f]{16}$/.test(text) ? text : undefined;
  } catch {
    return undefined;
  }
}

/** Salt (hex) of the WAL that Litestream called `index` in `generation`, from its shadow WAL header. */
export function readShadowWalSalt(dbPath: string, generation: string, index: number): string | undefined {
  const file = path.join(litestreamDir(dbPath), "generations", generation, "wal", `${index.toString(16).padStart(8, "0")}.wal`);
  return readBytes(file, 8, 16)?.toString("hex");
}
