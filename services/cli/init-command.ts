/**
 * `podium init DIR [--runtime ts|python] [--name NAME] [--force]`: writes a runnable agent bundle
 * (podium.json, the agent, a test through the runtime's test harness, a README) into DIR, which
 * must be missing or empty unless --force (then the files init writes are replaced, others kept).
 */
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { REPO_ROOT } from "../coordinator/runtime-commands.js";
import { NAME_PATTERN, type BundleRuntime } from "../registry/bundle-manifest.js";
import { PODIUM_VERSION } from "../shared/version.js";
import { templateFiles } from "./init-templates.js";
import { UsageError } from "./usage-error.js";

/** What --runtime accepts, and the runtime each name means. */
export const INIT_RUNTIMES: Readonly<Record<string, BundleRuntime>> = { ts: "typescript", typescript: "typescript", python: "python", py: "python" };
export const DEFAULT_INIT_RUNTIME = "ts";

/** DIR exists and has files, and --force was not given. */
export class DirectoryNotEmptyError extends Error {
  override readonly name = "DirectoryNotEmptyError";
  constructor(readonly dir: string) {
    super(`${dir} already exists and is not empty; pass --force to write the new agent's files into it (files of the same name are replaced)`);
  }
}

export interface InitOptions {
  /** Where the bundle goes (created when missing). */
  dir: string;
  runtime: BundleRuntime;
  /** podium.json `name`; default: DIR's base name. */
  name?: string | undefined;
  force?: boolean;
}

export interface InitResult {
  dir: string;
  name: string;
  runtime: BundleRuntime;
  /** The files written, relative to dir. */
  files: string[];
}

export function parseInitRuntime(value: string): BundleRuntime {
  const runtime = INIT_RUNTIMES[value.toLowerCase()];
  if (!runtime) throw new UsageError(`--runtime must be one of ${Object.keys(INIT_RUNTIMES).join(", ")} (got ${JSON.stringify(value)})`);
  return runtime;
}

export function checkAgentName(name: string, fromDir: boolean): string {
  if (NAME_PATTERN.test(name)) return name;
  const hint = fromDir ? `; the name comes from the directory, so pass --name NAME to choose another` : "";
  throw new UsageError(`${JSON.stringify(name)} is not a valid agent name: 1 to 64 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit${hint}`);
}

/** Writes the bundle. Throws UsageError for a bad name, DirectoryNotEmptyError without --force. */
export function initBundle(options: InitOptions): InitResult {
  const dir = path.resolve(options.dir);
  const name = checkAgentName(options.name ?? path.basename(dir), options.name === undefined);
  if (fs.existsSync(dir)) {
    if (!fs.statSync(dir).isDirectory()) throw new UsageError(`${dir} exists and is not a directory`);
    if (!options.force && fs.readdirSync(dir).length > 0) throw new DirectoryNotEmptyError(dir);
  }
  const files = templateFiles(options.runtime, { name, version: PODIUM_VERSION, pythonSdkDir: path.join(REPO_ROOT, "sdk/python") });
  fs.mkdirSync(dir, { recursive: true });
  for (const [file, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, file), text);
  return { dir, name, runtime: options.runtime, files: Object.keys(files) };
}

/** The next steps printed after init. */
function nextSteps(result: InitResult, shownDir: string): string {
  const cd = `cd ${shownDir}`;
  const test = result.runtime === "typescript" ? `${cd} && npm install && npm test` : `${cd} && PYTHONPATH=${path.join(REPO_ROOT, "sdk/python")} python3 -m unittest`;
  return [
    `created ${result.runtime} agent "${result.name}" in ${result.dir}: ${result.files.join(", ")}`,
    `  test it:   ${test}`,
    `  deploy it: npx podium deploy ${shownDir} --url http://127.0.0.1:7070`,
  ].join("\n");
}

/** The verb as the command line runs it; returns the exit code. */
export function runInit(args: string[], write: (text: string) => void): number {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { runtime: { type: "string", short: "r" }, name: { type: "string" }, force: { type: "boolean" } },
  });
  const [dir, ...extra] = positionals;
  if (!dir) throw new UsageError("init needs a directory: podium init my-agent --runtime ts|python");
  if (extra.length > 0) throw new UsageError(`init takes one directory (got ${positionals.join(" ")})`);
  const result = initBundle({ dir, runtime: parseInitRuntime(values.runtime ?? DEFAULT_INIT_RUNTIME), name: values.name, force: values.force === true });
  write(nextSteps(result, dir) + "\n");
  return 0;
}
