// Bundles the TypeScript agent runner (sdk/typescript/src/runner.ts and the SDK it imports) into one file,
// sdk/typescript/dist/runner.bundle.js, with esbuild. Bun then reads one module instead of transpiling and
// resolving ~15 at every agent start: a runner's spawn -> `ready` took ~13 ms instead of ~16 here. Part of
// `npm run build`; the coordinator runs the bundle while it is newer than every source of the SDK
// (runtime-commands.ts) and the sources otherwise. It stays inside sdk/typescript, the one directory of
// the SDK that agents' sandboxes see (read-only). The SDK's package name is still served by the runner
// (sdk-module.ts): its dynamic import of index.ts is bundled with it, so agents get this very SDK.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const sdk = path.join(root, "sdk", "typescript");
const started = Date.now();
await build({
  entryPoints: [path.join(sdk, "src", "runner.ts")],
  outfile: path.join(sdk, "dist", "runner.bundle.js"),
  bundle: true,
  platform: "node",
  format: "esm",
  target: "esnext",
  logLevel: "warning",
  legalComments: "none",
  // One long line (a build output, not a source to read); names are kept for the SDK's stack traces.
  minifyWhitespace: true,
  minifySyntax: true,
  keepNames: true,
});
process.stdout.write(`bundled the TypeScript agent runner in ${Date.now() - started} ms\n`);
