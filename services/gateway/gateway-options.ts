/**
 * Options in, compiled options inside: `compileGatewayOptions` fills every default of a gateway and validates
 * once; `compileBreakerOptions` does the same for each coordinator's circuit breaker (coordinator-breaker.ts).
 */
import type { ConnectRouter } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";
import type { CoordinatorDirectory } from "./coordinator-directory.js";
import type { CoordinatorBreakerOptions } from "./coordinator-breaker.js";
import { defaultConsoleDir } from "./console-assets.js";
import type { GatewayCore } from "./gateway-core.js";
import type { WsOutboundOptions } from "./ws-outbound.js";
import type { WsRoute } from "./ws-bridge.js";
import type { DeploymentRegistry } from "../registry/deployment-registry.js";
import { createLogger, type Logger } from "../shared/logger.js";
import type { MetricsRegistry } from "../shared/metrics.js";
import type { SpanSink } from "../tracing/tracer.js";

/** Largest JSON request body / WebSocket frame. */
export const DEFAULT_MAX_JSON_BYTES = 2 * 1024 * 1024;
/** Largest deployment upload. */
export const DEFAULT_MAX_BUNDLE_BYTES = 100 * 1024 * 1024;
/** Retry window for a broken upstream stream: longer than discovery's failure bound. */
export const DEFAULT_RESUME_WINDOW_MS = 8000;
/** How long a create of a named agent keeps asking while its coordinator is unreachable. */
export const DEFAULT_FAILOVER_WAIT_MS = 8000;
/** A coordinator's circuit breaker (coordinator-breaker.ts). */
export const DEFAULT_BREAKER_OPTIONS: Readonly<Required<CoordinatorBreakerOptions>> = {
  failureThreshold: 3,
  cooldownMs: 2000,
  // A loaded 2-core host answers 500 ms late without hanging.
  slowCallMs: 2000,
  probeTimeoutMs: 2000,
  hangProbes: 2,
};

export interface GatewayExtension {
  routes?: (router: ConnectRouter) => void;
  services?: DescService[];
  wsRoutes?: WsRoute[];
}

/** What an extension gets from the gateway it is mounted on, beside its core. */
export interface ExtensionContext {
  /** The gateway's bounds for a slow WebSocket client (its 4008 closes are counted in the gateway's metrics). */
  outbound: WsOutboundOptions;
}

export interface GatewayOptions {
  directory: CoordinatorDirectory;
  registry: DeploymentRegistry;
  /** Accepted client keys; empty disables auth (only for dev mode on loopback). */
  apiKeys: string[];
  logger?: Logger;
  /** Largest JSON request body / WebSocket frame (default 2 MiB). */
  maxJsonBytes?: number;
  /** Largest deployment upload (default 100 MiB). */
  maxBundleBytes?: number;
  /** Retry window for a broken upstream stream (default 8 s: longer than discovery's failure bound). */
  resumeWindowMs?: number;
  /**
   * How long a create of a named agent keeps asking while the agent's coordinator is unreachable (until
   * discovery declares it gone and a replicated agent resumes elsewhere). Default 8 s.
   */
  failoverWaitMs?: number;
  /**
   * Services mounted on the same port beside the core API, chosen by the process entry point (`podium
   * gateway`, `podium dev`: the translator's `/events` and the ACP bridge): the gateway imports none of them.
   */
  extensions?: (core: GatewayCore, context: ExtensionContext) => GatewayExtension[];
  /** More metrics served on GET /metrics after the gateway's own (dev mode: the in-process coordinator's). */
  metrics?: MetricsRegistry[];
  /** How much a slow WebSocket client may leave unread before it is closed with 4008 (ws-outbound.ts). */
  wsOutbound?: WsOutboundOptions;
  /** Origins whose pages may call the API from a browser (cors-policy.ts); none by default. */
  corsOrigins?: string[];
  /** The OTLP batcher the gateway's spans also go to (services/tracing): then every request is traced; without one only sampled callers' are. */
  spanExporter?: SpanSink;
  /** The built web console served at /console/ (console-assets.ts); default dist/console of the package. */
  consoleDir?: string;
}

/** Every default filled; `undefined` only where absence means "none". */
export interface CompiledGatewayOptions {
  directory: CoordinatorDirectory;
  registry: DeploymentRegistry;
  apiKeys: string[];
  logger: Logger;
  maxJsonBytes: number;
  maxBundleBytes: number;
  resumeWindowMs: number;
  failoverWaitMs: number;
  extensions: (core: GatewayCore, context: ExtensionContext) => GatewayExtension[];
  metrics: MetricsRegistry[];
  wsOutbound: WsOutboundOptions;
  corsOrigins: string[];
  spanExporter: SpanSink | undefined;
  consoleDir: string;
}

export function compileGatewayOptions(options: GatewayOptions): CompiledGatewayOptions {
  if (!Array.isArray(options.apiKeys) || options.apiKeys.some((key) => typeof key !== "string" || key === "")) {
    throw invalid("gateway", "apiKeys", options.apiKeys, "a list of non-empty keys (empty list: no auth)");
  }
  for (const origin of options.corsOrigins ?? []) {
    if (typeof origin !== "string" || origin === "") throw invalid("gateway", "corsOrigins", origin, "origins like https://app.example.com");
  }
  return {
    directory: options.directory,
    registry: options.registry,
    apiKeys: options.apiKeys,
    logger: options.logger ?? createLogger({ fields: { service: "gateway" } }),
    maxJsonBytes: positiveInteger("gateway", "maxJsonBytes", options.maxJsonBytes ?? DEFAULT_MAX_JSON_BYTES),
    maxBundleBytes: positiveInteger("gateway", "maxBundleBytes", options.maxBundleBytes ?? DEFAULT_MAX_BUNDLE_BYTES),
    resumeWindowMs: nonNegativeInteger("gateway", "resumeWindowMs", options.resumeWindowMs ?? DEFAULT_RESUME_WINDOW_MS),
    failoverWaitMs: nonNegativeInteger("gateway", "failoverWaitMs", options.failoverWaitMs ?? DEFAULT_FAILOVER_WAIT_MS),
    extensions: options.extensions ?? (() => []),
    metrics: options.metrics ?? [],
    wsOutbound: options.wsOutbound ?? {},
    corsOrigins: options.corsOrigins ?? [],
    spanExporter: options.spanExporter,
    consoleDir: options.consoleDir ?? defaultConsoleDir(),
  };
}

export function compileBreakerOptions(options: CoordinatorBreakerOptions = {}): Required<CoordinatorBreakerOptions> {
  const compiled = { ...DEFAULT_BREAKER_OPTIONS, ...definedOnly(options) };
  for (const [name, value] of Object.entries(compiled)) positiveInteger("breaker", name, value);
  return compiled;
}

/** `{ cooldownMs: undefined }` means the default, as `?? default` did. */
function definedOnly(options: CoordinatorBreakerOptions): CoordinatorBreakerOptions {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined));
}

function invalid(owner: string, name: string, value: unknown, expected: string): RangeError {
  return new RangeError(`invalid ${owner} option ${name}: expected ${expected}, got ${JSON.stringify(value) ?? String(value)}`);
}

function positiveInteger(owner: string, name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw invalid(owner, name, value, "a positive integer");
  return value;
}

function nonNegativeInteger(owner: string, name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) throw invalid(owner, name, value, "an integer >= 0");
  return value;
}
