/** Options in, compiled options inside: defaults filled and validated once. */
import fs from "node:fs";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ChronicleOptions } from "./chronicle-types.js";

export const DEFAULT_QUOTA_BYTES = 1024 ** 3;
export const DEFAULT_MAX_FILE_BYTES = 100 * 1024 ** 2;

export interface CompiledChronicleOptions {
  workspaceDir: string;
  /** realpath of workspaceDir: every containment check compares against it. */
  workspaceReal: string;
  dbPath: string;
  quotaBytes: number;
  maxFileBytes: number;
  ignore: ReadonlySet<string>;
  watch: boolean;
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new ConnectError(`chronicle option ${name} must be a positive integer, got ${String(value)}`, Code.InvalidArgument);
  }
  return value;
}

export function compileChronicleOptions(options: ChronicleOptions): CompiledChronicleOptions {
  const workspaceDir = path.resolve(options.workspaceDir);
  const dbPath = path.resolve(options.dbPath);
  let workspaceReal: string;
  try {
    workspaceReal = fs.realpathSync(workspaceDir);
  } catch {
    // A stopped agent's workspace may be gone while its history is still read: allowed when the database
    // exists (capture() then fails with FailedPrecondition); a new chronicle needs its workspace.
    if (!fs.existsSync(dbPath)) throw new ConnectError(`chronicle workspace ${workspaceDir} does not exist`, Code.NotFound);
    workspaceReal = workspaceDir;
  }
  const stat = fs.statSync(workspaceReal, { throwIfNoEntry: false });
  if (stat !== undefined && !stat.isDirectory()) {
    throw new ConnectError(`chronicle workspace ${workspaceDir} is not a directory`, Code.InvalidArgument);
  }
  for (const name of options.ignore ?? []) {
    if (name === "" || name.includes("/") || name === "." || name === "..") {
      throw new ConnectError(`chronicle ignore entries are plain names, got ${JSON.stringify(name)}`, Code.InvalidArgument);
    }
  }
  return {
    workspaceDir,
    workspaceReal,
    dbPath,
    quotaBytes: positive("quotaBytes", options.quotaBytes, DEFAULT_QUOTA_BYTES),
    maxFileBytes: positive("maxFileBytes", options.maxFileBytes, DEFAULT_MAX_FILE_BYTES),
    ignore: new Set(options.ignore ?? []),
    watch: options.watch ?? true,
  };
}
