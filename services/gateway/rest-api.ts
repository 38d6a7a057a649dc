/**
 * The REST API of the client contract (seed 004) plus the rest of Podium's HTTP surface: the rows of
 * rest-routes.ts (each an RPC of the shared handlers, or a health/metrics/trace route), dispatched here.
 * Every response is JSON; every error is `{error:{code,message}}` with the status from one table.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { GatewayCore } from "./gateway-core.js";
import { gatewayHandlers, type GatewayHandlers } from "./gateway-handlers.js";
import { readBody, readJsonObject, requestUrl, sendError, type AnyRequest, type AnyResponse } from "./http-io.js";
import { restRoutes, type RestRoute } from "./rest-routes.js";
import { ApiKeyAuth, nodeHeaders } from "../shared/api-key-auth.js";
import type { JsonObject } from "../shared/json.js";
import { methodNotAllowed, toHttpError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { logFailedRequest, REQUEST_ID_HEADER, requestIdFrom } from "../shared/request-log.js";
import { SpanKind, type Span } from "../tracing/tracer.js";
import { incomingTrace } from "../tracing/rpc-trace.js";

export interface RestApiOptions {
  core: GatewayCore;
  /** The shared handlers the Connect router also serves (made from `core` when not given). */
  handlers?: GatewayHandlers;
  auth: ApiKeyAuth;
  maxJsonBytes: number;
  maxBundleBytes: number;
  /** Extra fields for GET /health. */
  health: () => Promise<JsonObject>;
  /** GET /metrics (Prometheus text; API key required like the rest of the API). */
  metrics: () => Promise<string>;
  /** Called with the status of every REST response (metrics). */
  onResponse?: (status: number) => void;
  /** Where failed requests are logged, once, with their request id and cause (request-log.ts). */
  logger: Logger;
}

export function createRestApi(options: RestApiOptions): (req: AnyRequest, res: AnyResponse) => void {
  const { core } = options;
  const routes = restRoutes({ core, handlers: options.handlers ?? gatewayHandlers(core), health: options.health, metrics: options.metrics });

  return (req, res) => {
    const controller = new AbortController();
    res.once("close", () => controller.abort());
    if (options.onResponse) res.once("finish", () => options.onResponse?.(res.statusCode));
    const requestId = requestIdFrom(nodeHeaders(req.headers).get(REQUEST_ID_HEADER));
    res.setHeader(REQUEST_ID_HEADER, requestId);
    let span: Span | undefined;
    void (async () => {
      try {
        const url = requestUrl(req.url);
        const candidates = routes.filter((r) => r.pattern.test(url.pathname));
        const match = candidates.find((r) => r.method === req.method && (!r.when || r.when(url.searchParams)));
        if (!match) {
          if (candidates.length > 0) throw methodNotAllowed(req.method ?? "?", url.pathname, [...new Set(candidates.map((r) => r.method))]);
          throw new ConnectError(`no route for ${req.method} ${url.pathname}`, Code.NotFound);
        }
        if (!match.open) {
          const key = ApiKeyAuth.extract(nodeHeaders(req.headers));
          if (!options.auth.verify(key)) {
            throw new ConnectError(key ? "invalid API key" : "missing API key: send 'Authorization: Bearer <key>' or 'x-api-key'", Code.Unauthenticated);
          }
        }
        const params = (match.pattern.exec(url.pathname) ?? []).slice(1);
        span = requestSpan(core, req, res, match);
        const signal = controller.signal;
        const json = () => readJsonObject(req, options.maxJsonBytes, signal);
        const bytes = () => readBody(req, options.maxBundleBytes, signal);
        await match.handle({ req, res, params, query: url.searchParams, json, bytes, signal, trace: span });
      } catch (err) {
        const status = toHttpError(err).status;
        if (status >= 500) span?.fail(err); // a client's error is not the server span's (OpenTelemetry http conventions)
        // The raw target (it may be what failed to parse), without its query (which may hold an api_key).
        const target = (req.url ?? "").split("?")[0]?.slice(0, 256) ?? "";
        logFailedRequest(options.logger, { requestId, what: `${req.method} ${target}`, status, serverSide: status >= 500, err });
        sendError(res, err);
      }
    })();
  };
}

/** The server span of a REST request (OpenTelemetry http.* attributes), ended with its response. */
function requestSpan(core: GatewayCore, req: AnyRequest, res: AnyResponse, route: RestRoute): Span {
  const tracer = core.tracer;
  const parent = incomingTrace(nodeHeaders(req.headers));
  if (!tracer.records(parent)) return tracer.startSpan("", { parent });
  const attributes = { "http.request.method": route.method, "http.route": route.template, "url.path": (req.url ?? "").split("?")[0] ?? "", "url.scheme": "http" };
  const span = tracer.startSpan(`${route.method} ${route.template}`, { parent, kind: SpanKind.SERVER, attributes });
  res.once("close", () => {
    span.setAttribute("http.response.status_code", res.statusCode);
    span.end();
  });
  return span;
}
