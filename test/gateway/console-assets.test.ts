/**
 * The gateway serves the built console at /console/ without a key (the page asks for one), with content
 * types, cache headers and gzip; a gateway whose console was not built answers 503 with a plain reason.
 * Against real `podium dev` servers; the console files are a small stand-in build in a temp dir.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { startDevFixture, type DevFixture } from "../helpers/dev-fixture.js";

let built: DevFixture;
let unbuilt: DevFixture;
let dir: string;
const script = `console.log(${JSON.stringify("x".repeat(4000))});`;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "podium-console-"));
  fs.writeFileSync(path.join(dir, "index.html"), '<!doctype html><script type="module" src="console-ABCDEFGH.js"></script>');
  fs.writeFileSync(path.join(dir, "console-ABCDEFGH.js"), script);
  built = await startDevFixture({ gateway: { consoleDir: dir } });
  unbuilt = await startDevFixture({ gateway: { consoleDir: path.join(dir, "missing") } });
}, 60_000);

afterAll(async () => {
  await built?.close();
  await unbuilt?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("the console's static files", () => {
  it("redirects /console to /console/ and serves index.html there without a key, revalidated", async () => {
    const redirect = await fetch(`${built.url}/console`, { redirect: "manual" });
    expect(redirect.status).toBe(308);
    expect(redirect.headers.get("location")).toBe("console/");
    const page = await fetch(`${built.url}/console/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(page.headers.get("cache-control")).toBe("no-cache");
    expect(page.headers.get("content-security-policy")).toContain("default-src 'self'");
    expect(await page.text()).toContain("console-ABCDEFGH.js");
    const again = await fetch(`${built.url}/console/`, { headers: { "if-none-match": page.headers.get("etag") ?? "" } });
    expect(again.status).toBe(304);
  });

  it("serves hashed assets as immutable, gzipped for clients that accept it", async () => {
    const res = await fetch(`${built.url}/console/console-ABCDEFGH.js`, { headers: { "accept-encoding": "gzip" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(await res.text()).toBe(script); // fetch decodes the gzip it asked for
    const raw = await new Promise<{ encoding: string | undefined; body: Buffer }>((resolve, reject) => {
      http
        .get(`${built.url}/console/console-ABCDEFGH.js`, { headers: { "accept-encoding": "gzip" } }, (r) => {
          const chunks: Buffer[] = [];
          r.on("data", (c: Buffer) => chunks.push(c));
          r.on("end", () => resolve({ encoding: r.headers["content-encoding"], body: Buffer.concat(chunks) }));
        })
        .on("error", reject);
    });
    expect(raw.encoding).toBe("gzip");
    expect(zlib.gunzipSync(raw.body).toString()).toBe(script);
  });

  it("answers 404 for other names (no path reaches the file system) and 405 for other methods", async () => {
    expect((await fetch(`${built.url}/console/../package.json`)).status).not.toBe(200);
    expect((await fetch(`${built.url}/console/%2e%2e%2fpackage.json`)).status).toBe(404);
    expect((await fetch(`${built.url}/console/nope.js`)).status).toBe(404);
    const post = await fetch(`${built.url}/console/`, { method: "POST" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
  });

  it("answers 503 with a plain reason when the console was not built; the API is unaffected", async () => {
    const res = await fetch(`${unbuilt.url}/console/`);
    expect(res.status).toBe(503);
    expect(res.headers.get("content-type")).toBe("text/plain; charset=utf-8");
    expect(await res.text()).toMatch(/console was not built: run `npm run build`/);
    expect((await unbuilt.api("GET", "/api/v1/deployments")).status).toBe(200);
  });
});
