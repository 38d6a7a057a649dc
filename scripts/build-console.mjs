// Compiles the web console (console/src, Preact + TSX) into static files under dist/console with esbuild
// (about a second): one minified, content-hashed script and stylesheet, and index.html naming them.
// Part of `npm run build`; the gateway serves the result at /console/ (services/gateway/console-assets.ts).
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const out = path.join(root, "dist", "console");
const started = Date.now();
fs.rmSync(out, { recursive: true, force: true });
const result = await build({
  entryPoints: { console: path.join(root, "console/src/main.tsx") },
  bundle: true,
  minify: true,
  format: "esm",
  target: ["chrome110", "firefox110", "safari16"],
  jsx: "automatic",
  jsxImportSource: "preact",
  outdir: out,
  entryNames: "[name]-[hash]",
  metafile: true,
  legalComments: "none",
  logLevel: "warning",
});
const outputs = Object.keys(result.metafile.outputs).map((file) => path.basename(file));
const script = outputs.find((f) => f.endsWith(".js"));
const style = outputs.find((f) => f.endsWith(".css"));
if (!script || !style) throw new Error(`console build produced ${outputs.join(", ")}`);
const html = fs.readFileSync(path.join(root, "console/index.html"), "utf8").replace("%SCRIPT%", script).replace("%STYLE%", style);
fs.writeFileSync(path.join(out, "index.html"), html);
const bytes = outputs.reduce((sum, f) => sum + fs.statSync(path.join(out, f)).size, 0);
console.log(`console: dist/console (${outputs.join(", ")}; ${bytes} bytes) in ${Date.now() - started} ms`);
