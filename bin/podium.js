#!/usr/bin/env node
// The `podium` command. Podium is written in TypeScript: `npm ci` / `npm install` compiles it to dist/
// (the `prepare` script, `npm run build`), and this runs the compiled JavaScript, which starts in a
// fraction of the time of a transpiler. When dist/ is missing or older than a source file (an edit
// since the last build), it runs the sources through tsx instead, so what runs is always what is there.
// `npm run build` also bundles the command's front (scripts/build-cli.mjs): that bundle runs when present.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const compiled = path.join(root, "dist/services/cli/main.js");
/** The same code bundled: a few files to resolve and read instead of hundreds (`podium acp`). */
const bundled = path.join(root, "dist/services/cli-bundle/main.js");
/** Written by `npm run build` once tsc finished (tsc's incremental builds leave unchanged outputs' times alone). */
const stamp = path.join(root, "dist/.built");
const SOURCES = ["services", "gen", "packages/client/src"];
/** What the bundle also froze: the dependencies (a changed lockfile or patch) as of the build. */
const DEPENDENCY_FILES = ["package-lock.json", "patches"];

/** The newest modification time of a .ts file under `dir` (ms), or 0. */
function newestSource(dir) {
  let newest = 0;
  let entries;
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(full));
    else if (entry.name.endsWith(".ts")) newest = Math.max(newest, fs.statSync(full).mtimeMs);
  }
  return newest;
}

/** A file's or a directory's (and its entries') newest modification time (ms), or 0. */
function modifiedAt(target) {
  try {
    const stat = fs.statSync(target);
    if (!stat.isDirectory()) return stat.mtimeMs;
    return Math.max(stat.mtimeMs, ...fs.readdirSync(target).map((name) => fs.statSync(path.join(target, name)).mtimeMs));
  } catch {
    return 0;
  }
}

function builtAt() {
  try {
    return fs.existsSync(compiled) ? fs.statSync(stamp).mtimeMs : 0;
  } catch {
    return 0;
  }
}

const built = process.env.PODIUM_FROM_SOURCE === "1" ? 0 : builtAt();
let main;
const current = (dir) => newestSource(path.join(root, dir)) <= built;
if (built > 0 && SOURCES.every(current) && DEPENDENCY_FILES.every((file) => modifiedAt(path.join(root, file)) <= built)) {
  ({ main } = await import(fs.existsSync(bundled) ? bundled : compiled));
} else {
  const { register } = await import("tsx/esm/api");
  register();
  ({ main } = await import("../services/cli/main.ts"));
}
process.exitCode = await main(process.argv.slice(2));
