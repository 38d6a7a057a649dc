/**
 * CORS for the gateway's one port, so that a page on another origin can call REST, Connect and gRPC-Web
 * (WebSockets are not subject to CORS). No origin is allowed unless configured (`--cors-origin`,
 * `PODIUM_CORS_ORIGINS`); `podium dev` allows loopback origins on any port.
 *
 * An allowed origin's preflight (OPTIONS with Access-Control-Request-Method) is answered 204 with the
 * methods of the REST API and of Connect, the request headers Connect, gRPC-Web and Podium use
 * (`Authorization` or `X-Api-Key` for the API key, `Traceparent` / `Tracestate` for tracing) and a max age; its actual requests get Access-Control-Allow-Origin
 * and the response headers a Connect client reads. Another origin's preflight is answered 403 with a
 * JSON error that names the setting; its other requests pass without CORS headers (the browser keeps
 * the response from the page; non-browser clients are unaffected).
 */
import { Code, ConnectError, cors as connectCors } from "@connectrpc/connect";
import { toHttpError } from "../shared/errors.js";
import { sendJson } from "./http-io.js";
import type { RequestHandler } from "../shared/one-port-server.js";
import type { NodeServerRequest, NodeServerResponse } from "../shared/node-http.js";
import { nodeHeaders } from "../shared/api-key-auth.js";

/** Origins that `podium dev` allows besides configured ones: pages served from this machine. */
export const LOOPBACK_ORIGINS = ["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"];

const list = (values: readonly string[]) => [...new Set(values)].join(", ");
const METHODS = list(["GET", "POST", "PUT", "PATCH", "DELETE", ...connectCors.allowedMethods]);
const ALLOWED_HEADERS = list([...connectCors.allowedHeaders, "Authorization", "X-Api-Key", "X-Request-Id", "Traceparent", "Tracestate"]);
const EXPOSED_HEADERS = list([...connectCors.exposedHeaders, "Retry-After", "X-Request-Id"]);
const MAX_AGE_SECONDS = "7200";

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
    const headers = nodeHeaders(req.headers);
    const origin = headers.get("origin") ?? undefined;
    if (origin === undefined) return handler(req, res);
    const preflight = req.method === "OPTIONS" && headers.get("access-control-request-method") != null;
    if (!allowed(origin)) {
      if (!preflight) return handler(req, res);
      const { status, body, headers: errorHeaders } = toHttpError(new ConnectError(`origin ${origin} is not allowed to call this API (--cors-origin / PODIUM_CORS_ORIGINS)`, Code.PermissionDenied));
      sendJson(res, status, body, { ...errorHeaders, vary: "Origin" });
      return;
    }
    res.setHeader("access-control-allow-origin", origin);
    res.setHeader("vary", "Origin");
    if (preflight) {
      res.writeHead(204, { "access-control-allow-methods": METHODS, "access-control-allow-headers": ALLOWED_HEADERS, "access-control-max-age": MAX_AGE_SECONDS });
      res.end();
      return;
    }
    res.setHeader("access-control-expose-headers", EXPOSED_HEADERS);
    return handler(req, res);
  };
}
