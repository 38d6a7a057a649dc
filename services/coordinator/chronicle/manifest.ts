/**
 * The workspace as of the latest iteration: path -> size, stat fingerprint, content and the iteration that
 * last changed it. Held in memory (captures compare every scanned file against it) and mirrored in the
 * `manifest` table so it survives reopen. DB writes happen inside the caller's transaction; the in-memory
 * map is updated only after that transaction commits (`apply`).
 */
import type { Statement } from "better-sqlite3";
import type { Db } from "./chronicle-db.js";
import { PreparedOnUse } from "../store/sqlite.js";

export interface ManifestEntry {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  /** null for files over maxFileBytes (metadata only). */
  blobId: number | null;
  /** sha256 hex of the content; null when blobId is null. */
  hash: string | null;
  iteration: number;
  /** Modified so close to the capture that a later same-size write could keep the same mtime: re-hash next time. */
  racy: boolean;
  /** In memory only: the last capture scan that saw this path (finds deletions without a set of paths). */
  seen?: number;
}

/** A pending manifest change: an entry to write, or undefined to remove the path. */
export type ManifestUpdate = [path: string, entry: ManifestEntry | undefined];

interface RawEntry {
  path: string;
  size: number;
  mtime_ms: number;
  ctime_ms: number;
  ino: number;
  blob_id: number | null;
  hash: string | null;
  iteration: number;
  racy: number;
}

function splitPath(path: string): [dir: string, name: string] {
  const slash = path.lastIndexOf("/");
  return slash === -1 ? ["", path] : [path.slice(0, slash), path.slice(slash + 1)];
}

/**
 * Rewrites the manifest table from the newest version of each path (deleted ones left out). Its stat fields
 * are placeholders marked racy, so the next capture re-hashes rather than trusts them; materializing the
 * workspace rewrites them.
 */
export function rebuildManifest(db: Db): void {
  db.prepare("DELETE FROM manifest").run();
  db.prepare(
    `INSERT INTO manifest (path, size, mtime_ms, ctime_ms, ino, blob_id, iteration, racy)
     SELECT v.path, v.size, v.mtime_ms, 0, 0, v.blob_id, v.iteration, 1
     FROM versions v JOIN (SELECT path, max(iteration) AS newest FROM versions GROUP BY path) n
       ON v.path = n.path AND v.iteration = n.newest
     WHERE v.change <> 'deleted'`,
  ).run();
}

export class Manifest {
  readonly entries = new Map<string, ManifestEntry>();
  /** The same entries by directory then name: the capture scan looks files up by (dir, name) without building paths. */
  private readonly byDir = new Map<string, Map<string, ManifestEntry>>();
  private live = 0;
  private racy = 0;
  private directories: Set<string> | undefined;

  private readonly statements: PreparedOnUse;

  constructor(db: Db) {
    this.statements = new PreparedOnUse(db);
    const rows = db
      .prepare<[], RawEntry>(
        `SELECT m.path, m.size, m.mtime_ms, m.ctime_ms, m.ino, m.blob_id, b.hash, m.iteration, m.racy
         FROM manifest m LEFT JOIN blobs b ON b.id = m.blob_id`,
      )
      .all();
    for (const row of rows) {
      this.put(row.path, {
        size: row.size,
        mtimeMs: row.mtime_ms,
        ctimeMs: row.ctime_ms,
        ino: row.ino,
        blobId: row.blob_id,
        hash: row.hash,
        iteration: row.iteration,
        racy: row.racy !== 0,
      });
    }
  }

  private get upsert(): Statement<[string, number, number, number, number, number | null, number, number]> {
    return this.statements.get(`INSERT INTO manifest (path, size, mtime_ms, ctime_ms, ino, blob_id, iteration, racy) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (path) DO UPDATE SET size = excluded.size, mtime_ms = excluded.mtime_ms, ctime_ms = excluded.ctime_ms,
         ino = excluded.ino, blob_id = excluded.blob_id, iteration = excluded.iteration, racy = excluded.racy`);
  }

  private get removeRow(): Statement<[string]> {
    return this.statements.get("DELETE FROM manifest WHERE path = ?");
  }

  /** Sum of the sizes of the current files. */
  get liveBytes(): number {
    return this.live;
  }

  /** How many current entries are racy (re-hashed by the next capture). */
  get racyCount(): number {
    return this.racy;
  }

  get(path: string): ManifestEntry | undefined {
    return this.entries.get(path);
  }

  /** The files directly in `dir` ("" = root) by name. */
  directory(dir: string): ReadonlyMap<string, ManifestEntry> | undefined {
    return this.byDir.get(dir);
  }

  /** Every file at or below `path` ("" = all), with its full path. */
  *filesUnder(path: string): Generator<[string, ManifestEntry]> {
    const entry = this.entries.get(path);
    if (entry) yield [path, entry];
    const prefix = `${path}/`;
    for (const [dir, files] of this.byDir) {
      if (path !== "" && dir !== path && !dir.startsWith(prefix)) continue;
      for (const [name, file] of files) yield [dir === "" ? name : `${dir}/${name}`, file];
    }
  }

  /** True when some current file lies below `path` ("" is the root and always a directory). */
  isDirectory(path: string): boolean {
    if (path === "") return true;
    if (!this.directories) {
      this.directories = new Set();
      for (const file of this.entries.keys()) {
        for (let slash = file.indexOf("/"); slash !== -1; slash = file.indexOf("/", slash + 1)) {
          this.directories.add(file.slice(0, slash));
        }
      }
    }
    return this.directories.has(path);
  }

  /** Writes the updates to the database. Call inside a transaction, then `apply` after it commits. */
  write(updates: readonly ManifestUpdate[]): void {
    for (const [path, entry] of updates) {
      if (entry) {
        this.upsert.run(path, entry.size, entry.mtimeMs, entry.ctimeMs, entry.ino, entry.blobId, entry.iteration, entry.racy ? 1 : 0);
      } else {
        this.removeRow.run(path);
      }
    }
  }

  apply(updates: readonly ManifestUpdate[]): void {
    for (const [path, entry] of updates) {
      const previous = this.entries.get(path);
      if (entry) this.put(path, entry);
      else if (previous) this.remove(path, previous);
      if (!previous || !entry) this.directories = undefined;
    }
  }

  private put(path: string, entry: ManifestEntry): void {
    const previous = this.entries.get(path);
    if (previous) this.live -= previous.size;
    if (previous?.racy) this.racy--;
    this.entries.set(path, entry);
    this.live += entry.size;
    if (entry.racy) this.racy++;
    const [dir, name] = splitPath(path);
    let files = this.byDir.get(dir);
    if (!files) this.byDir.set(dir, (files = new Map()));
    files.set(name, entry);
  }

  private remove(path: string, previous: ManifestEntry): void {
    this.live -= previous.size;
    if (previous.racy) this.racy--;
    this.entries.delete(path);
    const [dir, name] = splitPath(path);
    const files = this.byDir.get(dir);
    files?.delete(name);
    if (files?.size === 0) this.byDir.delete(dir);
  }
}
