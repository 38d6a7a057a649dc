/**
 * The web console's static files (`npm run build` compiles console/ into dist/console): served by the
 * gateway at `/console/` on its own port, without a key (the page asks for one and sends it with every
 * API call). The files are read once, kept in memory with a gzipped copy, and served by name only, so
 * no request path ever reaches the file system. A gateway whose console was not built answers 503.
 */
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import type { AnyRequest, AnyResponse } from "./http-io.js";

export const CONSOLE_PATH = "/console";

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".json": "application/json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
};

/** The page talks to this origin only (REST, WebSockets); nothing is loaded from elsewhere. */
const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy": "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

interface Asset {
  body: Buffer;
  gzipped: Buffer | undefined;
  contentType: string;
  etag: string;
  /** Content-hashed names (console-XXXX.js) never change: cached for a year; index.html is revalidated. */
  immutable: boolean;
}

/** Where `npm run build` puts the console: dist/console under the package root (from sources or from dist/). */
export function defaultConsoleDir(): string {
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, "package.json"))) return path.join(dir, "dist", "console");
    if (path.dirname(dir) === dir) return path.join(process.cwd(), "dist", "console");
  }
}

function loadAssets(dir: string): Map<string, Asset> | undefined {
  if (!fs.existsSync(path.join(dir, "index.html"))) return undefined;
  const assets = new Map<string, Asset>();
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const contentType = CONTENT_TYPES[path.extname(entry.name)];
    if (!entry.isFile() || !contentType) continue;
    const body = fs.readFileSync(path.join(dir, entry.name));
    const gzipped = body.length > 1024 ? zlib.gzipSync(body, { level: 9 }) : undefined;
    const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`;
    assets.set(entry.name, { body, gzipped, contentType, etag, immutable: /-[A-Z0-9]{8}\.(js|css)$/.test(entry.name) });
  }
  return assets;
}

function reply(res: AnyResponse, status: number, headers: Record<string, string>, body?: string | Buffer): void {
  res.writeHead(status, headers);
  if (body === undefined) res.end();
  else res.end(body);
}

/**
 * A request handler for `/console` and everything under it: returns false for any other path, so the
 * caller passes the request on. `dir` holds the built files (index.html and its hashed assets).
 */
export function createConsoleAssets(dir: string): (req: AnyRequest, res: AnyResponse) => boolean {
  let assets: Map<string, Asset> | undefined;
  return (req, res) => {
    const pathname = (req.url ?? "/").split("?")[0] ?? "/";
    if (pathname !== CONSOLE_PATH && !pathname.startsWith(CONSOLE_PATH + "/")) return false;
    if (req.method !== "GET" && req.method !== "HEAD") {
      reply(res, 405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" }, "the console only answers GET and HEAD\n");
      return true;
    }
    if (pathname === CONSOLE_PATH) {
      // Relative asset URLs in index.html resolve under /console/ (also behind a proxy's path prefix).
      reply(res, 308, { location: "console/", "content-length": "0" });
      return true;
    }
    assets ??= loadAssets(dir);
    if (!assets) {
      const text = "The Podium console was not built: run `npm run build` (npm ci runs it), then restart the gateway.\n";
      reply(res, 503, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", "retry-after": "60" }, text);
      return true;
    }
    const name = pathname.slice(CONSOLE_PATH.length + 1) || "index.html";
    const asset = assets.get(name);
    if (!asset) {
      reply(res, 404, { "content-type": "text/plain; charset=utf-8" }, `no console file ${JSON.stringify(name.slice(0, 100))}\n`);
      return true;
    }
    const headers: Record<string, string> = {
      ...SECURITY_HEADERS,
      "content-type": asset.contentType,
      "cache-control": asset.immutable ? "public, max-age=31536000, immutable" : "no-cache",
      etag: asset.etag,
      vary: "Accept-Encoding",
    };
    if (req.headers["if-none-match"] === asset.etag) {
      reply(res, 304, headers);
      return true;
    }
    const gzip = asset.gzipped !== undefined && /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
    const body = gzip && asset.gzipped ? asset.gzipped : asset.body;
    reply(res, 200, { ...headers, ...(gzip ? { "content-encoding": "gzip" } : {}), "content-length": String(body.length) }, req.method === "HEAD" ? undefined : body);
    return true;
  };
}
