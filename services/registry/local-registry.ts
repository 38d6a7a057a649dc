/**
 * A deployment registry in a local directory:
 *
 *   <dir>/<name>/<version>/bundle.tar.gz     the archive as uploaded
 *   <dir>/<name>/<version>/deployment.json   the DeploymentRecord (+ the archive's sha256)
 *   <dir>/.tmp/                              scratch space for validating uploads
 *
 * Files are replaced atomically (temp file + fsync + rename). The archive is written before the
 * record, and the record carries the archive's sha256, so a crash between the two renames is
 * detected (readArchive -> DataLoss) and healed by the next upload. Uploads and reads of one id are
 * serialized in this process. Other processes may read the same directory (a coordinator next to a
 * gateway); concurrent writers in several processes are not serialized (use one uploader).
 */
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { newRecord, parseStored, sha256, toPublic, type StoredRecord } from "./stored-record.js";
import { atomicWriteFile, TEMP_SUFFIX } from "./atomic-write.js";
import { checkUpload } from "./checked-upload.js";
import { NAME_PATTERN, REGISTRY_PATTERN, VERSION_PATTERN, formatDeploymentId, parseDeploymentId } from "./bundle-manifest.js";
import { throwIfAborted } from "./cancel.js";
import { compareRecords } from "./deployment-registry.js";
import type { DeploymentRecord, DeploymentRegistry, UploadResult } from "./deployment-registry.js";
import { KeyedMutex } from "./keyed-mutex.js";

export const ARCHIVE_FILE = "bundle.tar.gz";
export const RECORD_FILE = "deployment.json";
const READ_ATTEMPTS = 3;
const READ_RETRY_MS = 50;

export interface LocalRegistryOptions {
  /** Root directory (created on first upload). */
  dir: string;
  /** Registry name used in deployment ids. Default "local". */
  name?: string;
  /** Extraction limits applied to uploads (defaults: 10,000 entries, 512 MiB). */
  limits?: { maxFiles?: number; maxBytes?: number };
}

function isMissing(error: unknown): boolean {
  return typeof error === "object" && error !== null && (error as { code?: unknown }).code === "ENOENT";
}

export class LocalRegistry implements DeploymentRegistry {
  readonly name: string;
  private readonly dir: string;
  private readonly limits: { maxFiles?: number; maxBytes?: number };
  private readonly locks = new KeyedMutex();

  constructor(options: LocalRegistryOptions) {
    const name = options.name ?? "local";
    if (!REGISTRY_PATTERN.test(name)) throw new RangeError(`registry name must match ${REGISTRY_PATTERN.source}`);
    this.name = name;
    this.dir = path.resolve(options.dir);
    this.limits = options.limits ?? {};
  }

  async upload(archive: Buffer, signal?: AbortSignal): Promise<UploadResult> {
    throwIfAborted(signal, "upload");
    const { manifest, digest, deploymentId, archiveSha256 } = await checkUpload(archive, { registry: this.name, scratchParent: path.join(this.dir, ".tmp"), limits: this.limits, signal });
    return this.locks.run(deploymentId, async () => {
      throwIfAborted(signal, "upload");
      const versionDir = this.versionDir(manifest.name, manifest.version);
      const existing = await this.readStored(versionDir, deploymentId);
      if (existing && existing.digest === digest && (await this.archiveIntact(versionDir, existing))) {
        return { deployment: toPublic(existing), created: false };
      }
      const record = newRecord({ deploymentId, manifest, digest, size: archive.length, registry: this.name, replaces: existing });
      await fsp.mkdir(versionDir, { recursive: true });
      await this.removeStaleTemps(versionDir);
      await atomicWriteFile(path.join(versionDir, ARCHIVE_FILE), archive);
      const stored: StoredRecord = { ...record, archiveSha256 };
      await atomicWriteFile(path.join(versionDir, RECORD_FILE), `${JSON.stringify(stored, null, 2)}\n`);
      return { deployment: record, created: true };
    });
  }

  async get(deploymentId: string): Promise<DeploymentRecord | undefined> {
    const { name, version, registry } = parseDeploymentId(deploymentId, this.name);
    if (registry !== this.name) return undefined;
    const stored = await this.readStored(this.versionDir(name, version), deploymentId);
    return stored && toPublic(stored);
  }

  async list(): Promise<DeploymentRecord[]> {
    const records: DeploymentRecord[] = [];
    for (const name of await this.subdirs(this.dir, NAME_PATTERN)) {
      for (const version of await this.subdirs(path.join(this.dir, name), VERSION_PATTERN)) {
        const id = formatDeploymentId({ name, version, registry: this.name });
        const stored = await this.readStored(this.versionDir(name, version), id);
        if (stored) records.push(toPublic(stored));
      }
    }
    return records.sort(compareRecords);
  }

  async readArchive(deploymentId: string, signal?: AbortSignal): Promise<Buffer> {
    const { name, version, registry } = parseDeploymentId(deploymentId, this.name);
    const id = formatDeploymentId({ name, version, registry });
    if (registry !== this.name) throw new ConnectError(`deployment ${id} is not in registry "${this.name}"`, Code.NotFound);
    throwIfAborted(signal, "read archive");
    return this.locks.run(id, async () => {
      const versionDir = this.versionDir(name, version);
      // Another process may be between writing the archive and the record of a replace: re-read a
      // few times before calling the pair inconsistent.
      for (let attempt = 1; ; attempt++) {
        const stored = await this.readStored(versionDir, id);
        if (!stored) throw new ConnectError(`unknown deployment ${id}`, Code.NotFound);
        let archive: Buffer | undefined;
        try {
          archive = await fsp.readFile(path.join(versionDir, ARCHIVE_FILE));
        } catch (error) {
          if (!isMissing(error)) throw error;
        }
        if (archive && sha256(archive) === stored.archiveSha256) return archive;
        if (attempt === READ_ATTEMPTS) {
          const problem = archive ? "does not match its record (interrupted upload?)" : "is missing";
          throw new ConnectError(`deployment ${id}: ${ARCHIVE_FILE} ${problem}; upload it again`, Code.DataLoss);
        }
        throwIfAborted(signal, "read archive");
        await delay(READ_RETRY_MS);
      }
    });
  }

  private versionDir(name: string, version: string): string {
    return path.join(this.dir, name, version);
  }

  private async subdirs(dir: string, pattern: RegExp): Promise<string[]> {
    try {
      const entries = await fsp.readdir(dir, { withFileTypes: true });
      return entries.filter((e) => e.isDirectory() && pattern.test(e.name)).map((e) => e.name);
    } catch (error) {
      if (isMissing(error)) return [];
      throw error;
    }
  }

  private async readStored(versionDir: string, id: string): Promise<StoredRecord | undefined> {
    let text: string;
    try {
      // A small local file read on every create: synchronously (a thread-pool round trip per call costs ~1 ms).
      text = fs.readFileSync(path.join(versionDir, RECORD_FILE), "utf8");
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
    let stored: StoredRecord | undefined;
    try {
      stored = parseStored(JSON.parse(text));
    } catch {
      stored = undefined;
    }
    if (!stored) throw new ConnectError(`deployment ${id}: ${RECORD_FILE} is corrupt`, Code.DataLoss);
    // the directory is the identity: ids follow this registry's current name
    const registry = this.name;
    return { ...stored, registry, deploymentId: formatDeploymentId({ name: stored.name, version: stored.version, registry }) };
  }

  private async archiveIntact(versionDir: string, stored: StoredRecord): Promise<boolean> {
    try {
      return sha256(await fsp.readFile(path.join(versionDir, ARCHIVE_FILE))) === stored.archiveSha256;
    } catch (error) {
      if (isMissing(error)) return false;
      throw error;
    }
  }

  /** Temp files left by a crash mid-write (we hold the id's lock, so none is in progress). */
  private async removeStaleTemps(versionDir: string): Promise<void> {
    const names = await fsp.readdir(versionDir);
    await Promise.all(names.filter((n) => n.endsWith(TEMP_SUFFIX)).map((n) => fsp.rm(path.join(versionDir, n), { force: true })));
  }
}
