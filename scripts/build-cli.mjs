// Bundles the `podium` command's front (dist/services/cli/main.js and what `podium acp`, `deploy`,
// `restore`, `ps`/`logs`/`state`/`files`/`send` load: the ACP SDK, the client, Connect, protobuf,
// zod) into dist/services/cli-bundle/ with esbuild, one chunk per command, so that Node resolves and
// reads a few files instead of ~275 (`podium acp` answers `initialize` in about half the time).
// Part of `npm run build`, after tsc: it bundles tsc's output, so the code is the same. bin/podium.js
// runs the bundle when it is there. The servers (`dev`, `gateway`, `coordinator`) and `init` stay
// tsc's files, loaded from the bundle by relative path: they find native modules, worker files and
// templates next to themselves. usage-error.js stays one module, so `instanceof UsageError` holds.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const services = path.join(root, "dist", "services");
const out = path.join(services, "cli-bundle");
const EXTERNAL = ["dev/main.js", "gateway/main.js", "coordinator/main.js", "cli/init-command.js", "cli/usage-error.js"].map((file) => path.join(services, file));
const started = Date.now();
fs.rmSync(out, { recursive: true, force: true });

/** Leaves EXTERNAL modules out of the bundle, imported by their path relative to the bundle's directory. */
const keepExternal = {
  name: "keep-external",
  setup(b) {
    b.onResolve({ filter: /^\.\.?\// }, (args) => {
      const resolved = path.resolve(args.resolveDir, args.path);
      if (!EXTERNAL.includes(resolved)) return undefined;
      return { path: path.relative(out, resolved), external: true };
    });
  },
};

const result = await build({
  entryPoints: { main: path.join(services, "cli/main.js") },
  bundle: true,
  splitting: true,
  platform: "node",
  format: "esm",
  target: "node20",
  outdir: out,
  chunkNames: "[name]-[hash]",
  // CommonJS dependencies bundled into ESM (ws) call require() for Node's built-ins.
  banner: { js: 'import { createRequire as __podiumCreateRequire } from "node:module"; const require = __podiumCreateRequire(import.meta.url);' },
  plugins: [keepExternal],
  metafile: true,
  logLevel: "warning",
});
// A bundled module that finds files next to itself would look in the wrong directory.
const located = Object.keys(result.metafile.inputs).filter((file) => /import\.meta\.(url|dirname|filename)/.test(fs.readFileSync(path.join(root, file), "utf8")));
if (located.length > 0) throw new Error(`cli bundle: these modules use import.meta and must stay external: ${located.join(", ")}`);
const outputs = Object.keys(result.metafile.outputs);
const bytes = outputs.reduce((sum, file) => sum + fs.statSync(path.join(root, file)).size, 0);
console.log(`cli: dist/services/cli-bundle (${outputs.length} files, ${Object.keys(result.metafile.inputs).length} modules, ${bytes} bytes) in ${Date.now() - started} ms`);
