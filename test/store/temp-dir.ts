/** Temp directories for store tests: each test gets its own, removed afterwards. */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export function makeTempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "podium-"));
}

export function removeTempDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}
