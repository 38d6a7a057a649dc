/**
 * CORS for the gateway's one port, so that a page on another origin can call REST, Connect and gRPC-Web
 * (WebSockets are not subject to CORS). No origin is allowed unless configured (`--cors-origin`,
 * `PODIUM_CORS_ORIGINS`); `podium dev` allows loopback origins on any port.
 *
 * An allowed origin's preflight (OPTIONS with Access-Control-Request-Method) is answered 204 with the
 * methods of the REST API and of Connect, the request headers Connect, gRPC-Web and Podium use
 * (`Authorization` or `X-Api-Key` for the API key) and a max age; its actual requests get Access-Control-Allow-Origin
 * and the response headers a Connect client reads. Another origin's preflight is answered 403 with a
 * JSON error that names the setting; its other requests pass without CORS headers (the browser keeps
 * the response from the page; non-browser clients are unaffected).
 */
import { cors as connectCors } from "@connectrpc/connect";
import type { RequestHandler } from "../shared/one-port-server.js";
import type { NodeServerRequest, NodeServerResponse } from "../shared/node-http.js";

/** Origins that `podium dev` allows besides configured ones: pages served from this machine. */
export const LOOPBACK_ORIGINS = ["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"];

const METHODS = [...new Set(["GET", "POST", "PUT", "PATCH", "DELETE", ...connectCors.allowedMethods])];
const ALLOWED_HEADERS = [...new Set([...connectCors.allowedHeaders, "Authorization", "X-Api-Key", "X-Request-Id"])];
const EXPOSED_HEADERS = [...new Set([...connectCors.exposedHeaders, "Retry-After", "X-Request-Id"])];
const MAX_AGE_SECONDS = 7200;

/**
 * Compiles allowed-origin patterns: `*` (any origin), an exact origin (`https://app.example.com`), an
 * origin with any port (`http://localhost:*`), or any subdomain (`https://*.example.com`). Throws on a
 * pattern that is not an origin (a path, no scheme), so a typo fails at start-up.
 */
export function compileCorsOrigins(patterns: readonly string[]): (origin: string) => boolean {
  const matchers = patterns.map((raw) => {
    const pattern = raw.trim().toLowerCase();
    if (pattern === "*") return () => true;
    const match = /^(https?):\/\/(\*\.)?([a-z0-9.-]+|\[[0-9a-f:.]+\])(?::(\d{1,5}|\*))?$/.exec(pattern);
    if (!match) throw new Error(`CORS origin ${JSON.stringify(raw)} is not an origin: scheme://host[:port], with * for any port or *. for any subdomain (or * alone)`);
    const [, scheme, anySubdomain, host, port] = match;
    return (origin: string) => {
      const parsed = /^(https?):\/\/([^/:]+|\[[^\]]+\])(?::(\d+))?$/.exec(origin.toLowerCase());
      if (!parsed || parsed[1] !== scheme) return false;
      const originHost = parsed[2] as string;
      const hostOk = anySubdomain ? originHost.endsWith(`.${host}`) : originHost === host;
      const portOk = port === "*" || (parsed[3] ?? "") === (port ?? "");
      return hostOk && portOk;
    };
  });
  return (origin) => matchers.some((matches) => matches(origin));
}

/** Parses a comma-separated list (PODIUM_CORS_ORIGINS) and repeated flags into one list. */
export function corsOriginsFrom(flags: readonly string[] | undefined, env: string | undefined): string[] {
  return [...(flags ?? []), ...(env ?? "").split(",")].map((origin) => origin.trim()).filter(Boolean);
}

/** Wraps the port's request handler with the CORS policy; `origins` empty returns `handler` as it is. */
export function withCors(handler: RequestHandler, origins: readonly string[]): RequestHandler {
  if (origins.length === 0) return handler;
  const allowed = compileCorsOrigins(origins);
  return (req: NodeServerRequest, res: NodeServerResponse) => {
    const origin = header(req, "origin");
    if (origin === undefined) return handler(req, res);
    const preflight = req.method === "OPTIONS" && header(req, "access-control-request-method") !== undefined;
    if (!allowed(origin)) {
      if (!preflight) return handler(req, res);
      const body = JSON.stringify({ error: { code: "permission_denied", message: `origin ${origin} is not allowed to call this API (--cors-origin / PODIUM_CORS_ORIGINS)` } });
      res.writeHead(403, { "content-type": "application/json", "content-length": Buffer.byteLength(body), vary: "Origin" });
      res.end(body);
      return;
    }
    res.setHeader("access-control-allow-origin", origin);
    res.setHeader("vary", "Origin");
    if (preflight) {
      res.writeHead(204, {
        "access-control-allow-methods": METHODS.join(", "),
        "access-control-allow-headers": ALLOWED_HEADERS.join(", "),
        "access-control-max-age": String(MAX_AGE_SECONDS),
      });
      res.end();
      return;
    }
    res.setHeader("access-control-expose-headers", EXPOSED_HEADERS.join(", "));
    return handler(req, res);
  };
}

function header(req: NodeServerRequest, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
