/**
 * Where Chromium is for browser tests: PODIUM_CHROMIUM, else `chromium` / `chromium-browser` on PATH
 * (Debian's package; scripts/system-deps.sh installs it). Playwright's own browser download is not used.
 */
import { execFileSync } from "node:child_process";

export function chromiumPath(): string {
  if (process.env.PODIUM_CHROMIUM) return process.env.PODIUM_CHROMIUM;
  for (const name of ["chromium", "chromium-browser"]) {
    try {
      return execFileSync("which", [name], { encoding: "utf8" }).trim();
    } catch {
      // not this one
    }
  }
  throw new Error("Chromium is not installed: run scripts/system-deps.sh (apt-get install chromium) or set PODIUM_CHROMIUM");
}
