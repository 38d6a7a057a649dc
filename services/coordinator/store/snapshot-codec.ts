/**
 * How a state snapshot is stored: the state's JSON text, brotli-compressed (quality 1) when that
 * saves at least 10%. Measured on a 50 MB agent-like state (bench/store-bench.ts): brotli q1 is
 * ~3-7x smaller than raw JSON and both compresses and decompresses faster than writing / reading the
 * extra bytes through SQLite, and faster than zlib deflate level 1 at a better ratio.
 */
import zlib from "node:zlib";
import { Code, ConnectError } from "@connectrpc/connect";

export type SnapshotEncoding = "json" | "json+br";

export interface EncodedSnapshot {
  encoding: SnapshotEncoding;
  data: Buffer;
  /** UTF-8 size of the JSON text. */
  rawBytes: number;
}

/** Below this the JSON is stored as it is: compressing would save microseconds at best. */
export const COMPRESS_MIN_BYTES = 16 * 1024;

export function encodeSnapshot(json: string, compress = true): EncodedSnapshot {
  const raw = Buffer.from(json, "utf8");
  if (!compress || raw.length < COMPRESS_MIN_BYTES) return { encoding: "json", data: raw, rawBytes: raw.length };
  const packed = zlib.brotliCompressSync(raw, {
    params: {
      [zlib.constants.BROTLI_PARAM_QUALITY]: 1,
      [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT,
      [zlib.constants.BROTLI_PARAM_SIZE_HINT]: raw.length,
    },
  });
  return packed.length < raw.length * 0.9 ? { encoding: "json+br", data: packed, rawBytes: raw.length } : { encoding: "json", data: raw, rawBytes: raw.length };
}

export function decodeSnapshot(encoding: string, data: Buffer): string {
  switch (encoding) {
    case "json":
      return data.toString("utf8");
    case "json+br":
      return zlib.brotliDecompressSync(data).toString("utf8");
    default:
      throw new ConnectError(`unknown snapshot encoding ${JSON.stringify(encoding)}`, Code.DataLoss);
  }
}
