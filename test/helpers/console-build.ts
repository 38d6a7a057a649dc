/**
 * The web console's build for browser tests and benches: `npm run build` made it (npm ci runs it); when
 * it is missing or older than a file under console/, it is rebuilt here (scripts/build-console.mjs,
 * under a second). A build that is current is left alone, so a test never rewrites dist/console while
 * another (e.g. test/packages packing dist) reads it.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { REPO_ROOT } from "../../services/coordinator/runtime-commands.js";

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(full));
    else if (entry.isFile()) newest = Math.max(newest, fs.statSync(full).mtimeMs);
  }
  return newest;
}

export function ensureConsoleBuilt(): void {
  const index = path.join(REPO_ROOT, "dist/console/index.html");
  const sources = Math.max(newestMtime(path.join(REPO_ROOT, "console")), fs.statSync(path.join(REPO_ROOT, "scripts/build-console.mjs")).mtimeMs);
  if (fs.existsSync(index) && fs.statSync(index).mtimeMs >= sources) return;
  execFileSync(process.execPath, [path.join(REPO_ROOT, "scripts/build-console.mjs")], { stdio: "inherit" });
}
