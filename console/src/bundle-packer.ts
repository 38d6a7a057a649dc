/**
 * Packs a dropped folder into a bundle archive in the browser, as `podium deploy DIR` does: a .tar.gz of
 * its regular files sorted by path (ustar, mode 0644, uid/gid 0, a fixed mtime), skipping node_modules,
 * .git, __pycache__ and .DS_Store, gzipped with the browser's CompressionStream.
 */
const BLOCK = 512;
const SKIPPED = new Set(["node_modules", ".git", "__pycache__", ".DS_Store"]);
/** 1985-10-26T08:15:00Z, the mtime `podium deploy` gives every entry. */
const MTIME = 499162500;

export interface BundleFile {
  path: string;
  data: Uint8Array;
}

function readEntries(reader: FileSystemDirectoryReader): Promise<FileSystemEntry[]> {
  return new Promise((resolve, reject) => reader.readEntries(resolve, reject));
}

/** Every file under a dropped directory entry, with paths relative to it. */
export async function filesOfEntry(root: FileSystemDirectoryEntry): Promise<BundleFile[]> {
  const out: BundleFile[] = [];
  const walk = async (dir: FileSystemDirectoryEntry, prefix: string): Promise<void> => {
    const reader = dir.createReader();
    for (let batch = await readEntries(reader); batch.length > 0; batch = await readEntries(reader)) {
      for (const entry of batch) {
        if (SKIPPED.has(entry.name)) continue;
        if (entry.isDirectory) await walk(entry as FileSystemDirectoryEntry, `${prefix}${entry.name}/`);
        else if (entry.isFile) {
          const file = await new Promise<File>((resolve, reject) => (entry as FileSystemFileEntry).file(resolve, reject));
          out.push({ path: prefix + entry.name, data: new Uint8Array(await file.arrayBuffer()) });
        }
      }
    }
  };
  await walk(root, "");
  return out;
}

/** The files of a folder picked with `<input type=file webkitdirectory>`, relative to that folder. */
export async function filesOfPickedFolder(list: FileList): Promise<BundleFile[]> {
  const out: BundleFile[] = [];
  for (const file of Array.from(list)) {
    const segments = (file.webkitRelativePath || file.name).split("/").slice(1);
    if (segments.length === 0 || segments.some((s) => SKIPPED.has(s))) continue;
    out.push({ path: segments.join("/"), data: new Uint8Array(await file.arrayBuffer()) });
  }
  return out;
}

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, "0") + "\0";
}

function header(path: string, size: number): Uint8Array {
  const encoder = new TextEncoder();
  const bytes = encoder.encode(path);
  let name = bytes;
  let prefix = new Uint8Array(0);
  if (bytes.length > 100) {
    const cut = path.lastIndexOf("/", 155);
    const head = encoder.encode(path.slice(0, cut));
    const tail = encoder.encode(path.slice(cut + 1));
    if (cut <= 0 || head.length > 155 || tail.length > 100) throw new Error(`path too long for the browser's packer: ${path} (use podium deploy)`);
    prefix = head;
    name = tail;
  }
  const block = new Uint8Array(BLOCK);
  const put = (text: string, at: number) => block.set(encoder.encode(text), at);
  block.set(name, 0);
  put(octal(0o644, 8), 100);
  put(octal(0, 8), 108);
  put(octal(0, 8), 116);
  put(octal(size, 12), 124);
  put(octal(MTIME, 12), 136);
  put("        ", 148); // checksum placeholder
  put("0", 156);
  put("ustar\0", 257);
  put("00", 263);
  block.set(prefix, 345);
  let sum = 0;
  for (const byte of block) sum += byte;
  put(octal(sum, 7) + " ", 148);
  return block;
}

/** The files as a .tar.gz Blob; requires a podium.json at the root. */
export async function packBundle(files: BundleFile[]): Promise<Blob> {
  if (!files.some((f) => f.path === "podium.json")) throw new Error("a bundle needs podium.json at its root");
  const parts: Uint8Array[] = [];
  for (const file of [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    parts.push(header(file.path, file.data.length), file.data);
    const padding = (BLOCK - (file.data.length % BLOCK)) % BLOCK;
    if (padding) parts.push(new Uint8Array(padding));
  }
  parts.push(new Uint8Array(2 * BLOCK));
  const tar = new Blob(parts as BlobPart[]);
  const gzipped = tar.stream().pipeThrough(new CompressionStream("gzip"));
  return new Response(gzipped).blob();
}
