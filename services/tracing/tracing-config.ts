/**
 * `--otlp-endpoint URL` / `PODIUM_OTLP_ENDPOINT` of `podium dev`, `podium gateway` and `podium coordinator`.
 * Without one no tracing module beyond tracer.ts is loaded and every service runs on NOOP_TRACER; with one,
 * the batcher and the OTLP/HTTP exporter are imported then, so the command's start-up does not pay for them.
 */
import type { Tracing } from "./tracing.js";

export const TRACING_FLAGS = {
  "otlp-endpoint": { type: "string" },
} as const;

/** The process's Tracing (close it on shutdown: it flushes), or undefined when no endpoint is set. */
export async function tracingFromFlags(values: { "otlp-endpoint"?: string | undefined }, env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<Tracing | undefined> {
  const endpoint = values["otlp-endpoint"] ?? env.PODIUM_OTLP_ENDPOINT;
  if (!endpoint) return undefined;
  const [{ OtlpHttpExporter }, { Tracing }] = await Promise.all([import("./otlp-http-exporter.js"), import("./tracing.js")]);
  const exporter = new OtlpHttpExporter({ endpoint });
  let failures = 0;
  log(`exporting spans to ${exporter.url} (OTLP/HTTP JSON)`);
  return new Tracing({
    exporter,
    // The first failure and then every 100th: a collector that is down must not flood the log.
    onError: (err) => {
      if (failures++ % 100 === 0)
        log(`${err instanceof Error ? err.message : String(err)}${err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : ""} (${failures} failed exports)`);
    },
  });
}
