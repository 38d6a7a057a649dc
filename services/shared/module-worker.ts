/**
 * A worker thread running one of Podium's own modules, given by its URL (`new URL("./x.js",
 * import.meta.url)`). Compiled (dist/), that is the `.js` file. Run from source (tsx, jest), the module
 * is a `.ts` file that a worker cannot load by itself: it is started through a small bootstrap that
 * registers tsx's loader in the worker first (workers do not inherit the parent's loader hooks).
 */
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Worker, type WorkerOptions } from "node:worker_threads";

let tsxApi: string | undefined;

/** The file URL of tsx's ESM API (`tsx/esm/api`), read from its package.json's exports. */
function tsxEsmApi(): string {
  if (tsxApi) return tsxApi;
  const require = createRequire(import.meta.url);
  const manifest = require.resolve("tsx/package.json");
  const pkg = JSON.parse(fs.readFileSync(manifest, "utf8")) as { exports?: Record<string, { import?: { default?: string } }> };
  const entry = pkg.exports?.["./esm/api"]?.import?.default;
  if (!entry) throw new Error("tsx does not export ./esm/api: cannot run a TypeScript worker from source");
  tsxApi = pathToFileURL(path.join(path.dirname(manifest), entry)).href;
  return tsxApi;
}

/**
 * `moduleUrl` with `.js` replaced by `.ts` when only the source exists (the caller names the module as
 * it is imported, `.js`; from source the file is the `.ts`).
 */
function moduleFile(moduleUrl: URL): URL {
  const file = fileURLToPath(moduleUrl);
  if (fs.existsSync(file) || !file.endsWith(".js")) return moduleUrl;
  return pathToFileURL(`${file.slice(0, -3)}.ts`);
}

export function startModuleWorker(moduleUrl: URL, options: Omit<WorkerOptions, "eval"> = {}): Worker {
  const file = moduleFile(moduleUrl);
  // Not the parent's flags: they may not apply to a worker (e.g. --input-type).
  const base: WorkerOptions = { execArgv: [], ...options };
  if (!file.pathname.endsWith(".ts")) return new Worker(file, base);
  const bootstrap = [`import { register } from ${JSON.stringify(tsxEsmApi())};`, `register();`, `await import(${JSON.stringify(file.href)});`].join("\n");
  return new Worker(new URL(`data:text/javascript,${encodeURIComponent(bootstrap)}`), base);
}
