/**
 * The REST API of the client contract (seed 004) plus the rest of Podium's HTTP surface.
 * Every response is JSON; every error is `{error:{code,message}}` with the status from one table.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import type { GatewayCore } from "./gateway-core.js";
import {
  decodeSegments, optionalString, optionalStringMap, queryInt, readBody, readJsonObject, requestUrl, sendDownload, sendError, sendJson,
  type AnyRequest, type AnyResponse,
} from "./http-io.js";
import {
  deploymentJson, fileContentJson, fileEntryJson, forkJson, instanceJson, isLive, iterationJson, logJson, messageJson, patchesJson, replicationJson, scheduleJson, sentJson,
} from "./rest-json.js";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { FileTargetSchema, type FileTarget } from "../../gen/podium/v1/file_service_pb.js";
import { deploymentToProto } from "../registry/to-proto.js";
import { resolveDeploymentId } from "../registry/deployment-registry.js";
import { ApiKeyAuth, nodeHeaders } from "../shared/api-key-auth.js";
import { isJsonObject, type JsonObject } from "../shared/json.js";
import { parseRfc3339 } from "../shared/rfc3339.js";
import { busyPolicyToProto, parseMultitaskStrategy } from "../shared/busy-policy.js";
import { METRICS_CONTENT_TYPE } from "../shared/metrics.js";
import { methodNotAllowed, toHttpError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { logFailedRequest, REQUEST_ID_HEADER, requestIdFrom } from "../shared/request-log.js";
import { SpanKind, type Span } from "../tracing/tracer.js";
import { incomingTrace } from "../tracing/rpc-trace.js";
import { readTrace } from "./trace-reader.js";

export interface RestApiOptions {
  core: GatewayCore;
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

/** `trace`: the request's server span (or the caller's context passing through it), for the calls it makes. */
type Handler = (ctx: { req: AnyRequest; res: AnyResponse; params: string[]; query: URLSearchParams; signal: AbortSignal; trace: Span }) => Promise<void>;
/** `template`: the route as OpenTelemetry's `http.route` names it, e.g. /api/v1/instances/{id}/messages. */
interface Route { method: string; pattern: RegExp; template: string; handler: Handler; open?: boolean }

const ID = "([^/]+)";

export function createRestApi(options: RestApiOptions): (req: AnyRequest, res: AnyResponse) => void {
  const { core } = options;
  const routes: Route[] = [];
  const route = (method: string, pattern: string, handler: Handler, open = false) =>
    routes.push({ method, pattern: new RegExp(`^${pattern}$`), template: pattern.replaceAll(ID, "{id}").replace("(instances|agents)", "{kind}").replace("(.+)", "{path}"), handler, open });

  const fileTarget = (kind: string, id: string): FileTarget =>
    create(FileTargetSchema, { target: kind === "instances" ? { case: "instanceId", value: id } : { case: "agentId", value: id } });

  route("GET", "/health", async ({ res }) => sendJson(res, 200, { status: "ok", ...(await options.health()) }), true);
  route("GET", "/healthz", async ({ res }) => sendJson(res, 200, { status: "ok" }), true);
  route("GET", "/metrics", async ({ res }) => {
    const text = await options.metrics();
    res.writeHead(200, { "content-type": METRICS_CONTENT_TYPE, "content-length": Buffer.byteLength(text) });
    res.end(text);
  });

  route("POST", "/api/v1/instances", async ({ req, res, signal }) => {
    const body = await readJsonObject(req, options.maxJsonBytes, signal);
    const deploymentId = optionalString(body, "deployment_id");
    if (!deploymentId) throw new ConnectError("deployment_id is required", Code.InvalidArgument);
    const instance = await core.createInstance(
      {
        deploymentId,
        agentId: optionalString(body, "agent_id") ?? "",
        secrets: optionalStringMap(body, "secrets"),
        environment: optionalStringMap(body, "environment"),
      },
      signal,
    );
    sendJson(res, 201, instanceJson(instance));
  });
  route("GET", "/api/v1/instances", async ({ res, query, signal }) => {
    const instances = await core.listInstances({ agentId: query.get("agent_id") ?? "", deploymentId: query.get("deployment_id") ?? "" }, signal);
    sendJson(res, 200, { instances: instances.map(instanceJson) });
  });
  route("GET", `/api/v1/instances/${ID}`, async ({ res, params, signal }) => {
    const instance = await core.getInstance(params[0] as string, signal);
    if (isLive(instance)) sendJson(res, 200, instanceJson(instance));
    else sendError(res, new ConnectError(`instance ${instance.instanceId} has ${instanceJson(instance).status}`, Code.NotFound), { instance: instanceJson(instance) });
  });
  route("DELETE", `/api/v1/instances/${ID}`, async ({ res, params, query, signal }) => {
    const instance = await core.stopInstance(params[0] as string, queryInt(query, "grace_ms", 0), signal);
    sendJson(res, 200, instanceJson(instance));
  });
  route("POST", `/api/v1/instances/${ID}/messages`, async ({ req, res, params, signal, trace }) => {
    const body = await readJsonObject(req, options.maxJsonBytes, signal);
    const { multitask_strategy: _strategy, ...bare } = body;
    const content = body.type === "process_message" || "content" in body ? body.content : bare;
    if (!isJsonObject(content)) throw new ConnectError("content must be an object, e.g. {\"text\":\"hi\"}", Code.InvalidArgument);
    const strategy = busyPolicyToProto(parseMultitaskStrategy(body.multitask_strategy));
    sendJson(res, 202, sentJson(await core.sendMessage(params[0] as string, content, signal, strategy, trace)));
  });
  route("POST", `/api/v1/instances/${ID}/cancel`, async ({ req, res, params, signal }) => {
    const body = await readJsonObject(req, options.maxJsonBytes, signal);
    const turn = body.turn === undefined || body.turn === null ? 0 : body.turn;
    if (typeof turn !== "number" || !Number.isInteger(turn) || turn < 0) throw new ConnectError("turn must be a non-negative integer", Code.InvalidArgument);
    const result = await core.cancelTurn(params[0] as string, BigInt(turn), signal);
    sendJson(res, 200, { cancelled: result.cancelled, turn: Number(result.turn) });
  });
  route("POST", `/api/v1/instances/${ID}/answers`, async ({ req, res, params, signal }) => {
    const body = await readJsonObject(req, options.maxJsonBytes, signal);
    const requestId = optionalString(body, "request_id");
    if (!requestId) throw new ConnectError("request_id is required", Code.InvalidArgument);
    await core.answerRequest(params[0] as string, requestId, body.value ?? null, signal);
    sendJson(res, 200, { request_id: requestId });
  });
  route("GET", `/api/v1/instances/${ID}/state`, async ({ res, params, query, signal }) => {
    const since = query.has("since") ? queryInt(query, "since", 0) : undefined;
    const at = query.has("at") ? queryInt(query, "at", 0) : undefined;
    const state = await core.getState(
      { instanceId: params[0] as string, ...(since !== undefined ? { since: BigInt(since) } : {}), ...(at !== undefined ? { at: BigInt(at) } : {}) },
      signal,
    );
    if (since !== undefined) sendJson(res, 200, { version: Number(state.version), patches: patchesJson(state.patches) });
    else if (at !== undefined) sendJson(res, 200, { version: Number(state.version), state: state.state ?? {}, patches: patchesJson(state.patches) });
    else sendJson(res, 200, { version: Number(state.version), state: state.state ?? {} });
  });
  route("GET", `/api/v1/instances/${ID}/messages`, async ({ res, params, query, signal }) => {
    const page = await core.listMessages({ instanceId: params[0] as string, afterSeq: BigInt(queryInt(query, "after_seq", 0)), limit: queryInt(query, "limit", 100) }, signal);
    sendJson(res, 200, { messages: page.messages.map(messageJson), next_after_seq: Number(page.nextAfterSeq) || null });
  });
  route("GET", `/api/v1/instances/${ID}/logs`, async ({ res, params, query, signal }) => {
    const page = await core.listLogs({ instanceId: params[0] as string, after: BigInt(queryInt(query, "after", 0)), limit: queryInt(query, "limit", 100) }, signal);
    sendJson(res, 200, { logs: page.logs.map(logJson), next_after: Number(page.nextAfter) || null });
  });

  route("GET", `/api/v1/instances/${ID}/schedules`, async ({ res, params, signal }) => {
    sendJson(res, 200, { schedules: (await core.listSchedules(params[0] as string, signal)).map(scheduleJson) });
  });
  route("GET", `/api/v1/agents/${ID}`, async ({ res, params, signal }) => {
    const { agent } = await core.getAgent(params[0] as string, signal);
    if (!agent) throw new ConnectError(`unknown agent ${params[0] as string}`, Code.NotFound);
    sendJson(res, 200, {
      agent_id: agent.agentId,
      instance_id: agent.instanceId || null,
      coordinator_id: agent.coordinatorId,
      last_seq: Number(agent.lastSeq),
      state_version: Number(agent.stateVersion),
    });
  });

  route("GET", `/api/v1/agents/${ID}/replication`, async ({ res, params, signal }) => {
    sendJson(res, 200, replicationJson(await core.replicationStatus(params[0] as string, signal)));
  });
  route("POST", `/api/v1/agents/${ID}/fork`, async ({ req, res, params, signal }) => {
    const body = await readJsonObject(req, options.maxJsonBytes, signal);
    const timestampText = optionalString(body, "timestamp");
    let timestamp: Date | undefined;
    if (timestampText !== undefined) {
      timestamp = parseRfc3339(timestampText);
      if (!timestamp) {
        throw new ConnectError(`timestamp must be an RFC 3339 time with a zone, e.g. "2026-11-23T13:00:00Z", got ${JSON.stringify(timestampText.slice(0, 64))}`, Code.InvalidArgument);
      }
    }
    const forked = await core.forkAgent(
      { sourceAgentId: params[0] as string, targetAgentId: optionalString(body, "agent_id") ?? "", ...(timestamp ? { timestamp: timestampFromDate(timestamp) } : {}) },
      signal,
    );
    sendJson(res, 201, forkJson(forked));
  });

  // Files: /api/v1/{instances|agents}/{id}/files[/{path}[/history | /at/{iteration}]]
  route("GET", `/api/v1/(instances|agents)/${ID}/files`, async ({ res, params, query, signal }) => {
    const target = fileTarget(params[0] as string, params[1] as string);
    const files = await core.filesFor(target, signal);
    const list = await files.listFiles({ target, path: query.get("path") ?? "", depth: queryInt(query, "depth", 1) }, { signal });
    sendJson(res, 200, { entries: list.entries.map(fileEntryJson) });
  });
  route("GET", `/api/v1/(instances|agents)/${ID}/files/(.+)`, async ({ res, params, query, signal }) => {
    const target = fileTarget(params[0] as string, params[1] as string);
    const segments = (params[2] as string).split("/");
    const files = await core.filesFor(target, signal);
    const n = segments.length;
    const raw = query.get("raw") === "1" || query.get("raw") === "true";
    if (n >= 3 && segments[n - 2] === "at") {
      const iteration = segments[n - 1] as string;
      if (!/^\d{1,15}$/.test(iteration)) throw new ConnectError("iteration must be a non-negative integer", Code.InvalidArgument);
      const path = decodeSegments(segments.slice(0, -2));
      if (raw) return sendDownload(res, files.downloadFile({ target, path, iteration: BigInt(iteration) }, { signal }));
      const at = await files.fileAtIteration({ target, path, iteration: BigInt(iteration) }, { signal });
      return sendJson(res, 200, fileContentJson(at.file));
    }
    if (raw && !(n >= 2 && segments[n - 1] === "history")) {
      return sendDownload(res, files.downloadFile({ target, path: decodeSegments(segments), iteration: 0n }, { signal }));
    }
    if (n >= 2 && segments[n - 1] === "history") {
      const history = await files.fileHistory({ target, path: decodeSegments(segments.slice(0, -1)) }, { signal });
      return sendJson(res, 200, { iterations: history.iterations.map(iterationJson) });
    }
    const read = await files.readFile({ target, path: decodeSegments(segments) }, { signal });
    sendJson(res, 200, fileContentJson(read.file));
  });
  route("POST", `/api/v1/(instances|agents)/${ID}/files/(.+)/restore`, async ({ res, params, query, signal }) => {
    const target = fileTarget(params[0] as string, params[1] as string);
    if (!query.has("iteration")) throw new ConnectError("iteration is required", Code.InvalidArgument);
    const files = await core.filesFor(target, signal);
    const restored = await files.restoreFile({ target, path: decodeSegments((params[2] as string).split("/")), iteration: BigInt(queryInt(query, "iteration", 0)) }, { signal });
    sendJson(res, 201, restored.iteration ? iterationJson(restored.iteration) : {});
  });

  route("POST", "/api/v1/deployments", async ({ req, res, signal }) => {
    const archive = await readBody(req, options.maxBundleBytes, signal);
    if (archive.length === 0) throw new ConnectError("request body must be the bundle as a .tar.gz archive", Code.InvalidArgument);
    const { deployment, created } = await core.registry.upload(archive, signal);
    sendJson(res, created ? 201 : 200, { ...deploymentJson(deploymentToProto(deployment)), created });
  });
  route("GET", "/api/v1/deployments", async ({ res }) => {
    sendJson(res, 200, { deployments: (await core.registry.list()).map((d) => deploymentJson(deploymentToProto(d))) });
  });
  route("GET", `/api/v1/deployments/${ID}`, async ({ res, params }) => {
    const raw = decodeSegments([params[0] as string]);
    const deployment = await core.registry.get(resolveDeploymentId(raw, core.registry.name).id);
    if (!deployment) throw new ConnectError(`unknown deployment ${raw}`, Code.NotFound);
    sendJson(res, 200, deploymentJson(deploymentToProto(deployment)));
  });
  route("GET", `/api/v1/traces/${ID}`, async ({ res, params, signal }) => {
    sendJson(res, 200, await readTrace(core, params[0] as string, signal));
  });

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
        const match = candidates.find((r) => r.method === req.method);
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
        await match.handler({ req, res, params, query: url.searchParams, signal: controller.signal, trace: span });
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
function requestSpan(core: GatewayCore, req: AnyRequest, res: AnyResponse, route: Route): Span {
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
