/**
 * The REST API as one table: each row is an HTTP method and path template, the RPC it calls (a method of the
 * public services, through the shared handler: edge-call.ts), how the request message is built from path,
 * query and body, and the seed's JSON response (rest-json.ts). The few rows without an RPC are the seed's
 * health, metrics and trace routes. rest-api.ts dispatches (auth, 405 + Allow, request ids, spans, errors).
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { create, fromJson, type DescMessage, type DescMethod, type DescMethodUnary, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { timestampFromDate, ValueSchema } from "@bufbuild/protobuf/wkt";
import type { GatewayCore } from "./gateway-core.js";
import type { GatewayHandlers } from "./gateway-handlers.js";
import { callStream, callUnary } from "./edge-call.js";
import { decodeSegments, optionalString, optionalStringMap, queryInt, sendDownload, sendError, sendJson, type AnyRequest, type AnyResponse } from "./http-io.js";
import {
  deploymentJson,
  fileContentJson,
  fileEntryJson,
  forkJson,
  instanceJson,
  isLive,
  iterationJson,
  logJson,
  messageJson,
  patchesJson,
  replicationJson,
  scheduleJson,
  sentJson,
} from "./rest-json.js";
import { InstanceService } from "../../gen/podium/v1/instance_service_pb.js";
import { FileService, FileTargetSchema, type FileTarget } from "../../gen/podium/v1/file_service_pb.js";
import { ReplicationService } from "../../gen/podium/v1/replication_service_pb.js";
import { DeploymentService } from "../../gen/podium/v1/deployment_service_pb.js";
import type { Instance } from "../../gen/podium/v1/instance_pb.js";
import { isJsonObject, type Json, type JsonObject } from "../shared/json.js";
import { parseRfc3339 } from "../shared/rfc3339.js";
import { busyPolicyToProto, parseMultitaskStrategy } from "../shared/busy-policy.js";
import { METRICS_CONTENT_TYPE } from "../shared/metrics.js";
import type { Span } from "../tracing/tracer.js";
import { readTrace } from "./trace-reader.js";

/** What a row reads a request from: the template's parameters in order (raw), the query, and the body on demand. */
export interface RestInput {
  params: string[];
  query: URLSearchParams;
  /** The body as a JSON object (bounded by maxJsonBytes). */
  json(): Promise<JsonObject>;
  /** The body as bytes (bounded by maxBundleBytes). */
  bytes(): Promise<Buffer>;
}

export interface RestCall extends RestInput {
  req: AnyRequest;
  res: AnyResponse;
  signal: AbortSignal;
  /** The request's server span, for the calls it makes. */
  trace: Span;
}

export interface RestRoute {
  method: string;
  /** OpenTelemetry's `http.route`: `{kind}` is instances|agents, `{path}` a file path, any other `{name}` one segment. */
  template: string;
  pattern: RegExp;
  /** The RPC the row calls, when it is one. */
  rpc?: DescMethod;
  /** The request message the row builds (what the RPC gets over Connect for the same input). */
  request?: (input: RestInput) => Promise<MessageShape<DescMessage>>;
  /** Whether the row takes a request its path matched (e.g. `?raw=1` downloads). */
  when?: (query: URLSearchParams) => boolean;
  /** Without an API key (health checks). */
  open?: boolean;
  handle(call: RestCall): Promise<void>;
}

function compile(template: string): RegExp {
  const source = template.replace(/\{(\w+)\}/g, (_all, name: string) => (name === "kind" ? "(instances|agents)" : name === "path" ? "(.+)" : "([^/]+)"));
  return new RegExp(`^${source}$`);
}

function route(method: string, template: string, handle: RestRoute["handle"], open = false): RestRoute {
  return { method, template, pattern: compile(template), handle, open };
}

/** A row that is one RPC: build its request, call the shared handler, answer with the seed's JSON. */
function rpc<I extends DescMessage, O extends DescMessage>(
  handlers: GatewayHandlers,
  method: string,
  template: string,
  desc: DescMethodUnary<I, O>,
  request: (input: RestInput) => MessageInitShape<I> | Promise<MessageInitShape<I>>,
  respond: (res: AnyResponse, out: MessageShape<O>, req: MessageShape<I>) => void,
  when?: (query: URLSearchParams) => boolean,
): RestRoute {
  const build = async (input: RestInput) => create(desc.input, await request(input));
  return {
    ...route(method, template, async (call) => {
      const req = await build(call);
      respond(call.res, await callUnary(handlers, desc, req, { protocol: "rest", signal: call.signal, span: call.trace }), req);
    }),
    rpc: desc,
    request: build,
    ...(when ? { when } : {}),
  };
}

function reply<O>(status: number, body: (out: O) => Json) {
  return (res: AnyResponse, out: O) => sendJson(res, status, body(out));
}

function present<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new ConnectError(`handler returned no ${what}`, Code.Internal);
  return value;
}

const liveInstance = (instance: Instance | undefined) => instanceJson(present(instance, "instance"));
const fileTarget = (kind: string, id: string): FileTarget => create(FileTargetSchema, { target: kind === "instances" ? { case: "instanceId", value: id } : { case: "agentId", value: id } });
const isRaw = (query: URLSearchParams) => query.get("raw") === "1" || query.get("raw") === "true";
const filePath = (param: string) => decodeSegments(param.split("/"));

function iterationParam(value: string): bigint {
  if (!/^\d{1,15}$/.test(value)) throw new ConnectError("iteration must be a non-negative integer", Code.InvalidArgument);
  return BigInt(value);
}

function turnOf(body: JsonObject): bigint {
  const turn = body.turn === undefined || body.turn === null ? 0 : body.turn;
  if (typeof turn !== "number" || !Number.isInteger(turn) || turn < 0) throw new ConnectError("turn must be a non-negative integer", Code.InvalidArgument);
  return BigInt(turn);
}

/** A message body is `{content, multitask_strategy?}`, or (seed shorthand) the content itself. */
function messageOf(id: string, body: JsonObject) {
  const { multitask_strategy: _strategy, ...bare } = body;
  const content = body.type === "process_message" || "content" in body ? body.content : bare;
  if (!isJsonObject(content)) throw new ConnectError('content must be an object, e.g. {"text":"hi"}', Code.InvalidArgument);
  return { instanceId: id, content, multitaskStrategy: busyPolicyToProto(parseMultitaskStrategy(body.multitask_strategy)) };
}

function forkTimestamp(body: JsonObject) {
  const text = optionalString(body, "timestamp");
  if (text === undefined) return {};
  const timestamp = parseRfc3339(text);
  if (!timestamp) throw new ConnectError(`timestamp must be an RFC 3339 time with a zone, e.g. "2026-11-23T13:00:00Z", got ${JSON.stringify(text.slice(0, 64))}`, Code.InvalidArgument);
  return { timestamp: timestampFromDate(timestamp) };
}

export interface RestRoutesOptions {
  core: GatewayCore;
  handlers: GatewayHandlers;
  /** Extra fields for GET /health. */
  health: () => Promise<JsonObject>;
  /** GET /metrics (Prometheus text). */
  metrics: () => Promise<string>;
}

/** Every REST route, in match order (a more specific file route before a more general one). */
export function restRoutes({ core, handlers: h, health, metrics }: RestRoutesOptions): RestRoute[] {
  const I = InstanceService.method;
  const F = FileService.method;
  const files = "/api/v1/{kind}/{id}/files";
  /** `?raw=1`: the file's bytes (DownloadFile), at `iteration` (0: the current one). */
  const download = (template: string, iteration: (params: string[]) => bigint): RestRoute => {
    const request = async ({ params }: RestInput) =>
      create(F.downloadFile.input, { target: fileTarget(params[0] as string, params[1] as string), path: filePath(params[2] as string), iteration: iteration(params) });
    return {
      ...route("GET", template, async (call) => {
        await sendDownload(call.res, callStream(h, F.downloadFile, await request(call), { protocol: "rest", signal: call.signal, span: call.trace }));
      }),
      rpc: F.downloadFile,
      request,
      when: isRaw,
    };
  };
  return [
    route("GET", "/health", async ({ res }) => sendJson(res, 200, { status: "ok", ...(await health()) }), true),
    route("GET", "/healthz", async ({ res }) => sendJson(res, 200, { status: "ok" }), true),
    route("GET", "/metrics", async ({ res }) => {
      const text = await metrics();
      res.writeHead(200, { "content-type": METRICS_CONTENT_TYPE, "content-length": Buffer.byteLength(text) });
      res.end(text);
    }),

    rpc(
      h,
      "POST",
      "/api/v1/instances",
      I.createInstance,
      async ({ json: body }) => {
        const b = await body();
        return {
          deploymentId: optionalString(b, "deployment_id") ?? "",
          agentId: optionalString(b, "agent_id") ?? "",
          secrets: optionalStringMap(b, "secrets"),
          environment: optionalStringMap(b, "environment"),
        };
      },
      reply(201, (out) => liveInstance(out.instance)),
    ),
    rpc(
      h,
      "GET",
      "/api/v1/instances",
      I.listInstances,
      ({ query }) => ({ agentId: query.get("agent_id") ?? "", deploymentId: query.get("deployment_id") ?? "" }),
      reply(200, (out) => ({ instances: out.instances.map(instanceJson) })),
    ),
    rpc(
      h,
      "GET",
      "/api/v1/instances/{id}",
      I.getInstance,
      ({ params }) => ({ instanceId: params[0] as string }),
      (res, out) => {
        const instance = present(out.instance, "instance");
        if (isLive(instance)) sendJson(res, 200, instanceJson(instance));
        else sendError(res, new ConnectError(`instance ${instance.instanceId} has ${instanceJson(instance).status}`, Code.NotFound), { instance: instanceJson(instance) });
      },
    ),
    rpc(
      h,
      "DELETE",
      "/api/v1/instances/{id}",
      I.stopInstance,
      ({ params, query }) => ({ instanceId: params[0] as string, graceMs: queryInt(query, "grace_ms", 0) }),
      reply(200, (out) => liveInstance(out.instance)),
    ),
    rpc(h, "POST", "/api/v1/instances/{id}/messages", I.sendMessage, async ({ params, json: body }) => messageOf(params[0] as string, await body()), reply(202, sentJson)),
    rpc(
      h,
      "POST",
      "/api/v1/instances/{id}/cancel",
      I.cancelTurn,
      async ({ params, json: body }) => ({ instanceId: params[0] as string, turn: turnOf(await body()) }),
      reply(200, (out) => ({ cancelled: out.cancelled, turn: Number(out.turn) })),
    ),
    rpc(
      h,
      "POST",
      "/api/v1/instances/{id}/answers",
      I.answerRequest,
      async ({ params, json: body }) => {
        const b = await body();
        return { instanceId: params[0] as string, requestId: optionalString(b, "request_id") ?? "", value: fromJson(ValueSchema, b.value ?? null) };
      },
      (res, _out, req) => sendJson(res, 200, { request_id: req.requestId }),
    ),
    rpc(
      h,
      "GET",
      "/api/v1/instances/{id}/state",
      I.getState,
      ({ params, query }) => ({
        instanceId: params[0] as string,
        ...(query.has("since") ? { since: BigInt(queryInt(query, "since", 0)) } : {}),
        ...(query.has("at") ? { at: BigInt(queryInt(query, "at", 0)) } : {}),
      }),
      (res, state, req) => {
        if (req.since !== undefined) sendJson(res, 200, { version: Number(state.version), patches: patchesJson(state.patches) });
        else if (req.at !== undefined) sendJson(res, 200, { version: Number(state.version), state: state.state ?? {}, patches: patchesJson(state.patches) });
        else sendJson(res, 200, { version: Number(state.version), state: state.state ?? {} });
      },
    ),
    rpc(
      h,
      "GET",
      "/api/v1/instances/{id}/messages",
      I.listMessages,
      ({ params, query }) => ({ instanceId: params[0] as string, afterSeq: BigInt(queryInt(query, "after_seq", 0)), limit: queryInt(query, "limit", 100) }),
      reply(200, (page) => ({ messages: page.messages.map(messageJson), next_after_seq: Number(page.nextAfterSeq) || null })),
    ),
    rpc(
      h,
      "GET",
      "/api/v1/instances/{id}/logs",
      I.listLogs,
      ({ params, query }) => ({ instanceId: params[0] as string, after: BigInt(queryInt(query, "after", 0)), limit: queryInt(query, "limit", 100) }),
      reply(200, (page) => ({ logs: page.logs.map(logJson), next_after: Number(page.nextAfter) || null })),
    ),
    rpc(
      h,
      "GET",
      "/api/v1/instances/{id}/schedules",
      I.listSchedules,
      ({ params }) => ({ instanceId: params[0] as string }),
      reply(200, (out) => ({ schedules: out.schedules.map(scheduleJson) })),
    ),
    rpc(
      h,
      "GET",
      "/api/v1/agents/{id}",
      I.getAgent,
      ({ params }) => ({ agentId: params[0] as string }),
      (res, { agent }, req) => {
        if (!agent) throw new ConnectError(`unknown agent ${req.agentId}`, Code.NotFound);
        sendJson(res, 200, {
          agent_id: agent.agentId,
          instance_id: agent.instanceId || null,
          coordinator_id: agent.coordinatorId,
          last_seq: Number(agent.lastSeq),
          state_version: Number(agent.stateVersion),
        });
      },
    ),
    rpc(
      h,
      "GET",
      "/api/v1/agents/{id}/replication",
      ReplicationService.method.getReplicationStatus,
      ({ params }) => ({ agentId: params[0] as string }),
      reply(200, (out) => replicationJson(present(out.status, "replication status"))),
    ),
    rpc(
      h,
      "POST",
      "/api/v1/agents/{id}/fork",
      ReplicationService.method.forkAgent,
      async ({ params, json: body }) => {
        const b = await body();
        const timestamp = forkTimestamp(b);
        return { sourceAgentId: params[0] as string, targetAgentId: optionalString(b, "agent_id") ?? "", ...timestamp };
      },
      reply(201, forkJson),
    ),

    // Files: /api/v1/{instances|agents}/{id}/files[/{path}[/history | /at/{iteration}]], `?raw=1` for the bytes.
    rpc(
      h,
      "GET",
      files,
      F.listFiles,
      ({ params, query }) => ({ target: fileTarget(params[0] as string, params[1] as string), path: query.get("path") ?? "", depth: queryInt(query, "depth", 1) }),
      reply(200, (out) => ({ entries: out.entries.map(fileEntryJson) })),
    ),
    download(`${files}/{path}/at/{iteration}`, (params) => iterationParam(params[3] as string)),
    rpc(
      h,
      "GET",
      `${files}/{path}/at/{iteration}`,
      F.fileAtIteration,
      ({ params }) => ({ target: fileTarget(params[0] as string, params[1] as string), path: filePath(params[2] as string), iteration: iterationParam(params[3] as string) }),
      reply(200, (out) => fileContentJson(out.file)),
    ),
    rpc(
      h,
      "GET",
      `${files}/{path}/history`,
      F.fileHistory,
      ({ params }) => ({ target: fileTarget(params[0] as string, params[1] as string), path: filePath(params[2] as string) }),
      reply(200, (out) => ({ iterations: out.iterations.map(iterationJson) })),
    ),
    download(`${files}/{path}`, () => 0n),
    rpc(
      h,
      "GET",
      `${files}/{path}`,
      F.readFile,
      ({ params }) => ({ target: fileTarget(params[0] as string, params[1] as string), path: filePath(params[2] as string) }),
      reply(200, (out) => fileContentJson(out.file)),
    ),
    rpc(
      h,
      "POST",
      `${files}/{path}/restore`,
      F.restoreFile,
      ({ params, query }) => {
        if (!query.has("iteration")) throw new ConnectError("iteration is required", Code.InvalidArgument);
        return { target: fileTarget(params[0] as string, params[1] as string), path: filePath(params[2] as string), iteration: BigInt(queryInt(query, "iteration", 0)) };
      },
      reply(201, (out) => (out.iteration ? iterationJson(out.iteration) : {})),
    ),

    rpc(
      h,
      "POST",
      "/api/v1/deployments",
      DeploymentService.method.uploadDeployment,
      async ({ bytes }) => ({ bundle: await bytes() }),
      (res, out) => {
        sendJson(res, out.created ? 201 : 200, { ...deploymentJson(present(out.deployment, "deployment")), created: out.created });
      },
    ),
    rpc(
      h,
      "GET",
      "/api/v1/deployments",
      DeploymentService.method.listDeployments,
      () => ({}),
      reply(200, (out) => ({ deployments: out.deployments.map(deploymentJson) })),
    ),
    rpc(
      h,
      "GET",
      "/api/v1/deployments/{id}",
      DeploymentService.method.getDeployment,
      ({ params }) => ({ deploymentId: decodeSegments([params[0] as string]) }),
      reply(200, (out) => deploymentJson(present(out.deployment, "deployment"))),
    ),
    route("GET", "/api/v1/traces/{id}", async ({ res, params, signal }) => sendJson(res, 200, await readTrace(core, params[0] as string, signal))),
  ];
}
