/** Helpers for the registry tests: temp dirs, bundle directories and hand-made tar archives. */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { expect } from "@jest/globals";
import { ConnectError } from "@connectrpc/connect";
import type { Code } from "@connectrpc/connect";
import { Header } from "tar";
import type { HeaderData } from "tar";

export function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "podium-"));
}

export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

export type FileSpec = string | Buffer | { content: string | Buffer; mode: number };

/** Writes files (relative path -> content) under dir. */
export function writeFiles(dir: string, files: Record<string, FileSpec>): string {
  for (const [rel, spec] of Object.entries(files)) {
    const target = path.join(dir, rel);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    if (typeof spec === "string" || Buffer.isBuffer(spec)) {
      fs.writeFileSync(target, spec);
    } else {
      fs.writeFileSync(target, spec.content);
      fs.chmodSync(target, spec.mode);
    }
  }
  return dir;
}

export function manifestJson(overrides: Record<string, unknown> = {}): string {
  return JSON.stringify({ name: "echo", version: "1.0.0", runtime: "python", entry: "main.py", ...overrides });
}

/** A minimal valid python bundle. */
export function makeBundle(dir: string, extra: Record<string, FileSpec> = {}, manifest: Record<string, unknown> = {}): string {
  return writeFiles(dir, { "podium.json": manifestJson(manifest), "main.py": "def on_message(ctx, msg):\n    pass\n", ...extra });
}

/** Lists every file and directory under dir (relative, sorted). */
export function listTree(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[]).map((p) => p.split(path.sep).join("/")).sort();
}

/** One raw tar entry (header block + padded body), built by hand so it can be malicious. */
export function tarEntry(data: HeaderData, body: Buffer = Buffer.alloc(0)): Buffer {
  const block = Buffer.alloc(512);
  new Header({ mode: 0o644, uid: 0, gid: 0, mtime: new Date(0), size: body.length, type: "File", ...data }).encode(block, 0);
  const padding = Buffer.alloc((512 - (body.length % 512)) % 512);
  return Buffer.concat([block, body, padding]);
}

export function tarFile(filePath: string, content: string | Buffer, mode = 0o644): Buffer {
  return tarEntry({ path: filePath, mode }, Buffer.from(content));
}

/** Valid podium.json + main.py entries, to put malicious entries after. */
export function validEntries(prefix = ""): Buffer[] {
  return [tarFile(`${prefix}podium.json`, manifestJson()), tarFile(`${prefix}main.py`, "print('hi')\n")];
}

export function tarGz(entries: Buffer[]): Buffer {
  return zlib.gzipSync(Buffer.concat([...entries, Buffer.alloc(1024)]));
}

export async function expectConnectError(promise: Promise<unknown>, code: Code, messagePart?: string | RegExp): Promise<ConnectError> {
  let caught: unknown;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ConnectError);
  const error = caught as ConnectError;
  expect(error.code).toBe(code);
  if (typeof messagePart === "string") expect(error.rawMessage).toContain(messagePart);
  else if (messagePart) expect(error.rawMessage).toMatch(messagePart);
  return error;
}
