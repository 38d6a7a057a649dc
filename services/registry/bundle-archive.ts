/**
 * Bundle archives: a deterministic .tar.gz of a bundle directory (packBundle) and its safe
 * extraction (extractBundle, in bundle-extract.ts). Format details: docs/deployments.md.
 */
import { createReadStream } from "node:fs";
import * as zlib from "node:zlib";
import { Code, ConnectError } from "@connectrpc/connect";
import { Header, Pax } from "tar";
import { readManifest, walkBundle } from "./bundle-files.js";
import type { BundleFile } from "./bundle-files.js";

export { bundleDigest } from "./bundle-files.js";
export { extractBundle, DEFAULT_MAX_FILES, DEFAULT_MAX_BYTES } from "./bundle-extract.js";
export type { ExtractLimits, ExtractedBundle } from "./bundle-extract.js";

/** Every packed entry gets this mtime (the same fixed date npm uses for reproducible tarballs). */
export const PACK_MTIME = new Date("1985-10-26T08:15:00.000Z");
const BLOCK = 512;

export interface PackOptions {
  /** Called after each chunk of file content is packed, with the total content bytes packed so far. */
  onProgress?(bytes: number): void;
}

/** The header block(s) for one regular file: a pax header first when the path needs one. */
function fileHeader(file: BundleFile): Buffer {
  const data = {
    path: file.path,
    mode: file.executable ? 0o755 : 0o644,
    uid: 0,
    gid: 0,
    size: file.size,
    mtime: PACK_MTIME,
    type: "File" as const,
    uname: "",
    gname: "",
  };
  const header = new Header(data);
  const block = Buffer.alloc(BLOCK);
  const needPax = header.encode(block, 0);
  if (!needPax) return block;
  // Long or non-ASCII path: the pax record carries the real path (no mtime/atime records, so the
  // bytes stay deterministic); the ustar header keeps a truncated one.
  const pax = new Pax({ path: file.path }).encode();
  return Buffer.concat([pax, block]);
}

/**
 * Packs a bundle directory into a deterministic .tar.gz: regular files only (no directory entries),
 * sorted by path, mode 0644 or 0755 (executable bit kept), uid/gid 0, no user/group names, fixed
 * mtime, gzip header without a timestamp and with OS "unknown". Skips node_modules, .git,
 * __pycache__ and .DS_Store; follows symlinks that stay inside the bundle and refuses the rest.
 * Validates podium.json (InvalidArgument) before packing.
 */
export async function packBundle(dir: string, options: PackOptions = {}): Promise<Buffer> {
  const files = await walkBundle(dir);
  await readManifest(files);

  const gzip = zlib.createGzip({ level: zlib.constants.Z_BEST_COMPRESSION });
  const out: Buffer[] = [];
  gzip.on("data", (chunk: Buffer) => out.push(chunk));
  const done = new Promise<void>((resolve, reject) => {
    gzip.on("end", resolve);
    gzip.on("error", reject);
  });
  const write = async (chunk: Buffer): Promise<void> => {
    if (!gzip.write(chunk)) await new Promise<void>((resolve) => gzip.once("drain", resolve));
  };

  let packed = 0;
  for (const file of files) {
    await write(fileHeader(file));
    let written = 0;
    for await (const chunk of createReadStream(file.absPath)) {
      const buffer = chunk as Buffer;
      written += buffer.length;
      if (written > file.size) break;
      await write(buffer);
      packed += buffer.length;
      options.onProgress?.(packed);
    }
    if (written !== file.size) {
      gzip.destroy();
      throw new ConnectError(`bundle file ${file.path} changed while packing`, Code.Aborted);
    }
    const padding = (BLOCK - (file.size % BLOCK)) % BLOCK;
    if (padding > 0) await write(Buffer.alloc(padding));
  }
  gzip.end(Buffer.alloc(2 * BLOCK)); // end-of-archive marker
  await done;
  const archive = Buffer.concat(out);
  archive[9] = 0xff; // gzip OS field: "unknown", like `tar --portable` (no header CRC to fix up)
  return archive;
}
