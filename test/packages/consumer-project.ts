/**
 * The published packages as a consumer gets them: `npm pack` each one, then a fresh project in the
 * temp dir (outside the repository, no symlinks into it) that installs the tarballs and nothing of
 * the repository's sources. test/packages/consumer/ holds its files (scripts, a strict tsconfig, an
 * agent); the test fills in package.json and public-types.ts.
 */
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { create as createTar } from "tar";
import ts from "typescript";
import { REPO_ROOT } from "../../services/coordinator/runtime-commands.js";

/** The published packages: directory in the repository → npm name. */
export const PACKAGES = [
  { dir: ".", name: "@podium-agents/podium" },
  { dir: "packages/client", name: "@podium-agents/client" },
  { dir: "sdk/typescript", name: "@podium-agents/sdk" },
  { dir: "packages/testing", name: "@podium-agents/testing" },
] as const;

/** What `npm pack --json` reports for one tarball. */
export interface PackedPackage {
  name: string;
  filename: string;
  /** Bytes of the .tgz. */
  size: number;
  unpackedSize: number;
  files: { path: string }[];
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command without the environment `npm test` adds (npm_package_*, npm_config_prefix and the
 * like would point a nested npm at the repository) and without jest's NODE_OPTIONS.
 */
export function run(command: string, args: string[], options: { cwd: string; timeoutMs: number; env?: Record<string, string> }): Promise<RunResult> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined || key === "NODE_OPTIONS" || key === "INIT_CWD") continue;
    if (/^npm_/i.test(key) && !/^npm_config_(cache|userconfig|cafile|nodedir|registry)$/i.test(key)) continue;
    env[key] = value;
  }
  return new Promise((resolve) => {
    execFile(command, args, { cwd: options.cwd, env: { ...env, ...options.env }, timeout: options.timeoutMs, maxBuffer: 32 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
      resolve({ code, stdout, stderr: error && code === 1 && !stderr ? String(error) : stderr });
    });
  });
}

function expectSuccess(what: string, result: RunResult): RunResult {
  if (result.code !== 0) throw new Error(`${what} failed (exit ${result.code}):\n${result.stdout}\n${result.stderr}`);
  return result;
}

/** Builds every package (`npm run build`: incremental, a no-op after `npm ci`) and packs them into `dest`. */
export async function packPackages(dest: string): Promise<PackedPackage[]> {
  expectSuccess("npm run build", await run("npm", ["run", "build"], { cwd: REPO_ROOT, timeoutMs: 300_000 }));
  const dirs = PACKAGES.map((p) => (p.dir === "." ? "." : `./${p.dir}`));
  const packed = expectSuccess("npm pack", await run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", dest, ...dirs], { cwd: REPO_ROOT, timeoutMs: 120_000 }));
  return JSON.parse(packed.stdout) as PackedPackage[];
}

/** The version of a package in the repository's own install (what its lockfile resolved). */
function installedVersion(name: string): string {
  return (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "node_modules", name, "package.json"), "utf8")) as { version: string }).version;
}

/**
 * better-sqlite3 is native. Its install script first looks for a prebuilt binary in
 * `npm_config_better_sqlite3_local_prebuilds` (prebuild-install's local prebuilds), then downloads
 * one from GitHub, then compiles (about a minute). This machine cannot reach GitHub, so the consumer
 * gets the binary the repository's own install built for this Node ABI and platform, packed the way
 * prebuild-install expects; the consumer pins better-sqlite3 to that same version.
 */
async function writeLocalPrebuild(dir: string): Promise<{ version: string }> {
  const version = installedVersion("better-sqlite3");
  const stage = path.join(dir, "stage");
  fs.mkdirSync(path.join(stage, "build/Release"), { recursive: true });
  fs.copyFileSync(path.join(REPO_ROOT, "node_modules/better-sqlite3/build/Release/better_sqlite3.node"), path.join(stage, "build/Release/better_sqlite3.node"));
  const file = path.join(dir, `better-sqlite3-v${version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`);
  await createTar({ gzip: true, file, cwd: stage, portable: true }, ["build"]);
  fs.rmSync(stage, { recursive: true, force: true });
  return { version };
}

/**
 * A fresh project in `dir` with the tarballs installed (and TypeScript and Connect, at the versions the
 * repository uses, as a consumer would add them). `npm install` reads the tarballs and the npm cache
 * (filled by the repository's `npm ci`), and asks the registry only for what is not there.
 */
export async function createConsumerProject(dir: string, tarballs: string[]): Promise<void> {
  fs.cpSync(path.join(REPO_ROOT, "test/packages/consumer"), dir, { recursive: true });
  const prebuilds = path.join(dir, ".prebuilds");
  fs.mkdirSync(prebuilds);
  const sqlite = await writeLocalPrebuild(prebuilds);
  const devDependencies = Object.fromEntries(["typescript", "@connectrpc/connect", "@connectrpc/connect-node"].map((name) => [name, installedVersion(name)]));
  const manifest = { name: "podium-consumer", private: true, type: "module", devDependencies, overrides: { "better-sqlite3": sqlite.version } };
  fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify(manifest, null, 2) + "\n");
  const install = await run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", ...tarballs], {
    cwd: dir,
    timeoutMs: 300_000,
    env: { npm_config_better_sqlite3_local_prebuilds: prebuilds },
  });
  expectSuccess("npm install of the tarballs", install);
}

/** Writes public-types.ts: every export of each specifier, imported by name; returns them by specifier. */
export function writePublicTypes(dir: string, specifiers: readonly string[]): Record<string, string[]> {
  const probe = path.join(dir, "probe-exports.ts");
  fs.writeFileSync(probe, specifiers.map((s, i) => `import * as m${i} from "${s}";\n`).join(""));
  const program = ts.createProgram([probe], {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    lib: ["lib.es2023.d.ts"],
    types: [],
    noEmit: true,
  });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(probe);
  if (!source) throw new Error("probe-exports.ts was not loaded");
  const exports: Record<string, string[]> = {};
  for (const statement of source.statements) {
    if (!ts.isImportDeclaration(statement) || !ts.isStringLiteral(statement.moduleSpecifier)) continue;
    const specifier = statement.moduleSpecifier.text;
    const module = checker.getSymbolAtLocation(statement.moduleSpecifier);
    if (!module) throw new Error(`${specifier} does not resolve from ${dir}`);
    exports[specifier] = checker
      .getExportsOfModule(module)
      .map((symbol) => symbol.name)
      .sort();
  }
  fs.rmSync(probe);
  const lines = Object.entries(exports).map(([specifier, names], i) => {
    const prefix = `p${i}_`;
    return `import type {\n${names.map((n) => `  ${n} as ${prefix}${n},\n`).join("")}} from "${specifier}";\n`;
  });
  fs.writeFileSync(path.join(dir, "public-types.ts"), `// Written by test/packages/consumer-project.ts: every export, by name.\n${lines.join("")}`);
  return exports;
}

/** Top-level node_modules entries that are symlinks resolving into the repository (there must be none). */
export function linksIntoRepo(dir: string): string[] {
  const found: string[] = [];
  const visit = (folder: string) => {
    for (const entry of fs.readdirSync(folder, { withFileTypes: true })) {
      const full = path.join(folder, entry.name);
      if (entry.name.startsWith("@") && entry.isDirectory()) visit(full);
      else if (entry.isSymbolicLink() && fs.realpathSync(full).startsWith(REPO_ROOT + path.sep)) found.push(full);
    }
  };
  visit(path.join(dir, "node_modules"));
  return found;
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}
