/** Crash-safe file replacement: write a temp file next to the target, fsync, rename over it. */
import { randomBytes } from "node:crypto";
import * as fsp from "node:fs/promises";
import * as path from "node:path";

export const TEMP_SUFFIX = ".tmp";

export async function atomicWriteFile(target: string, data: Buffer | string): Promise<void> {
  const temp = `${target}.${randomBytes(6).toString("hex")}${TEMP_SUFFIX}`;
  const handle = await fsp.open(temp, "wx", 0o644);
  try {
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fsp.rename(temp, target);
  } catch (error) {
    await fsp.rm(temp, { force: true });
    throw error;
  }
  await syncDir(path.dirname(target));
}

/** Makes a rename durable. Best effort: some platforms cannot open directories. */
export async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await fsp.open(dir, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // not supported here (e.g. Windows); the rename itself is still atomic
  }
}
