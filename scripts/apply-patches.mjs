// postinstall: applies patches/ (a documented s3rver fix used by the tests, see docs/replication.md; and
// connect-es answering INVALID_ARGUMENT, not INTERNAL, for request messages that do not parse, see
// services/shared/connect-handler.ts).
// patch-package is a dev dependency, so production installs (--omit=dev) skip this quietly, and so does
// the installed @podium-agents/podium package, which ships neither patches/ nor patch-package.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";

if (!fs.existsSync(new URL("../patches", import.meta.url))) process.exit(0);
const require = createRequire(import.meta.url);
let bin;
try {
  bin = require.resolve("patch-package/index.js");
} catch {
  process.exit(0);
}
const result = spawnSync(process.execPath, [bin], { stdio: "inherit" });
process.exit(result.status ?? 1);
