/**
 * Content-addressed storage inside the Chronicle database. A blob is one distinct content, keyed by the
 * SHA-256 of its raw bytes, stored once however many files or iterations hold it, as 1 MiB chunks that are
 * zlib-deflated (or kept raw when deflate does not shrink them, e.g. images and archives).
 *
 * Files up to one chunk are read into memory, hashed, and inserted only when the hash is new. Larger files
 * are hashed and stored in one pass (never held whole in memory) under a placeholder row that gets its real
 * hash at the end, or is dropped when that content was already stored.
 */
import { createHash, randomUUID } from "node:crypto";
import fs from "node:fs";
import zlib from "node:zlib";
import type { Statement } from "better-sqlite3";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Db } from "./chronicle-db.js";
import { PreparedOnUse } from "../store/sqlite.js";

export const CHUNK_BYTES = 1024 * 1024;
const CODEC_RAW = 0;
const CODEC_DEFLATE = 1;

export interface StoredBlob {
  id: number;
  /** sha256 hex of the raw bytes. */
  hash: string;
  size: number;
}

interface ChunkRow {
  codec: number;
  data: Buffer;
}

export interface BlobTotals {
  blobCount: number;
  blobStoredBytes: number;
}

export function formatHash(hex: string): string {
  return `sha256:${hex}`;
}

export class BlobStore {
  private readonly statements: PreparedOnUse;

  constructor(db: Db) {
    this.statements = new PreparedOnUse(db);
  }

  private get totals(): Statement<[], { n: number; bytes: number | null }> {
    return this.statements.get("SELECT count(*) AS n, sum(stored_size) AS bytes FROM blobs");
  }

  private get findId(): Statement<[string], { id: number }> {
    return this.statements.get("SELECT id FROM blobs WHERE hash = ?");
  }

  private get findHash(): Statement<[number], { hash: string }> {
    return this.statements.get("SELECT hash FROM blobs WHERE id = ?");
  }

  private get insertBlob(): Statement<[string, number, number, number]> {
    return this.statements.get("INSERT INTO blobs (hash, size, stored_size, chunk_count) VALUES (?, ?, ?, ?)");
  }

  private get finishBlob(): Statement<[string, number, number, number, number]> {
    return this.statements.get("UPDATE blobs SET hash = ?, size = ?, stored_size = ?, chunk_count = ? WHERE id = ?");
  }

  private get dropBlob(): Statement<[number]> {
    return this.statements.get("DELETE FROM blobs WHERE id = ?");
  }

  private get insertChunk(): Statement<[number, number, number, Buffer]> {
    return this.statements.get("INSERT INTO blob_chunks (blob_id, seq, codec, data) VALUES (?, ?, ?, ?)");
  }

  private get dropChunks(): Statement<[number]> {
    return this.statements.get("DELETE FROM blob_chunks WHERE blob_id = ?");
  }

  private get chunkCount(): Statement<[number], { chunk_count: number }> {
    return this.statements.get("SELECT chunk_count FROM blobs WHERE id = ?");
  }

  private get readChunk(): Statement<[number, number], ChunkRow> {
    return this.statements.get("SELECT codec, data FROM blob_chunks WHERE blob_id = ? AND seq = ?");
  }

  idOf(hash: string): number | undefined {
    return this.findId.get(hash)?.id;
  }

  hashOf(id: number): string {
    const row = this.findHash.get(id);
    if (!row) throw new ConnectError(`chronicle blob ${id} is missing`, Code.DataLoss);
    return row.hash;
  }

  /** Stores `data` unless the same content is already stored. Call inside a transaction. */
  putBuffer(data: Buffer): StoredBlob {
    const hash = createHash("sha256").update(data).digest("hex");
    const existing = this.idOf(hash);
    if (existing !== undefined) return { id: existing, hash, size: data.length };
    const id = Number(this.insertBlob.run(hash, data.length, 0, 0).lastInsertRowid);
    let stored = 0;
    let seq = 0;
    for (let offset = 0; offset < data.length || seq === 0; offset += CHUNK_BYTES) {
      stored += this.writeChunk(id, seq++, data.subarray(offset, offset + CHUNK_BYTES));
    }
    this.finishBlob.run(hash, data.length, stored, seq, id);
    return { id, hash, size: data.length };
  }

  /**
   * Reads at most `limit` bytes from `fd` (stops early at EOF) and stores them. Small contents go through
   * putBuffer; larger ones are streamed. Call inside a transaction.
   */
  putFd(fd: number, limit: number): StoredBlob {
    const first = Buffer.allocUnsafe(Math.min(limit, CHUNK_BYTES));
    const firstLength = readFully(fd, first);
    if (firstLength < first.length || limit <= CHUNK_BYTES) return this.putBuffer(first.subarray(0, firstLength));

    const placeholder = `pending:${randomUUID()}`;
    const id = Number(this.insertBlob.run(placeholder, 0, 0, 0).lastInsertRowid);
    const hasher = createHash("sha256");
    let size = 0;
    let stored = 0;
    let seq = 0;
    let chunk = first.subarray(0, firstLength);
    const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
    for (;;) {
      hasher.update(chunk);
      size += chunk.length;
      stored += this.writeChunk(id, seq++, chunk);
      if (size >= limit) break;
      const length = readFully(fd, buffer.subarray(0, Math.min(CHUNK_BYTES, limit - size)));
      if (length === 0) break;
      chunk = buffer.subarray(0, length);
    }
    const hash = hasher.digest("hex");
    const existing = this.idOf(hash);
    if (existing !== undefined) {
      this.dropChunks.run(id);
      this.dropBlob.run(id);
      return { id: existing, hash, size };
    }
    this.finishBlob.run(hash, size, stored, seq, id);
    return { id, hash, size };
  }

  /** The raw content, chunk by chunk; reads one chunk per step. */
  *chunks(id: number): Generator<Buffer, void, undefined> {
    const count = this.chunkCount.get(id)?.chunk_count;
    if (count === undefined) throw new ConnectError(`chronicle blob ${id} is missing`, Code.DataLoss);
    for (let seq = 0; seq < count; seq++) {
      const row = this.readChunk.get(id, seq);
      if (!row) throw new ConnectError(`chronicle blob ${id} chunk ${seq} is missing`, Code.DataLoss);
      yield row.codec === CODEC_DEFLATE ? zlib.inflateSync(row.data) : row.data;
    }
  }

  read(id: number): Buffer {
    const parts = [...this.chunks(id)];
    return parts.length === 1 && parts[0] ? parts[0] : Buffer.concat(parts);
  }

  usage(): BlobTotals {
    const row = this.totals.get();
    return { blobCount: row?.n ?? 0, blobStoredBytes: row?.bytes ?? 0 };
  }

  private writeChunk(id: number, seq: number, raw: Buffer): number {
    const deflated = raw.length > 0 ? zlib.deflateSync(raw) : raw;
    const keepRaw = deflated.length >= raw.length;
    const data = keepRaw ? raw : deflated; // better-sqlite3 copies bound buffers, so reusing `raw` later is safe
    this.insertChunk.run(id, seq, keepRaw ? CODEC_RAW : CODEC_DEFLATE, data);
    return data.length;
  }
}

/** Fills `target` from the current position of `fd`; returns the bytes read (less only at EOF). */
function readFully(fd: number, target: Buffer): number {
  let filled = 0;
  while (filled < target.length) {
    const n = fs.readSync(fd, target, filled, target.length - filled, null);
    if (n === 0) break;
    filled += n;
  }
  return filled;
}
