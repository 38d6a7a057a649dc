/**
 * One turn's trace: a waterfall of its spans across gateway -> coordinator -> agent, each with its service,
 * name, start and duration, and its attributes and status when opened. Read from GET /api/v1/traces/{id}
 * (the spans each process keeps in memory); reloaded every 2 s while open, since a turn's last spans end
 * with it.
 */
import { api, ApiError } from "./api-client.js";
import { usePolled } from "./use-polled.js";
import { formatDuration, waterfallRows, type TraceJson } from "./trace-waterfall.js";

async function loadTrace(traceId: string): Promise<TraceJson | undefined> {
  try {
    return await api<TraceJson>("GET", `/api/v1/traces/${encodeURIComponent(traceId)}`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return undefined; // not recorded (yet)
    throw err;
  }
}

export function TracePanel({ instanceId, traceId }: { instanceId: string; traceId: string }) {
  const trace = usePolled(() => loadTrace(traceId), [traceId], 2000);
  const { rows, totalMs } = waterfallRows(trace.data?.spans ?? []);
  return (
    <div class="trace" data-testid="trace">
      <div class="row header">
        <h3>
          Trace <span class="mono">{traceId}</span>
        </h3>
        <span class="muted small">{rows.length > 0 ? `${rows.length} spans · ${formatDuration(totalMs)}` : ""}</span>
        <span class="spacer" />
        <a href={`#/instances/${encodeURIComponent(instanceId)}/stream`}>← Stream</a>
      </div>
      {trace.error && <p class="error">{trace.error}</p>}
      {trace.data === undefined && !trace.error && <p class="muted">No spans of this trace are kept (yet): a gateway and a coordinator keep their last 10,000 spans of sampled traces.</p>}
      {trace.data?.unreachable.map((u) => (
        <p key={u.coordinator_id} class="error small">
          coordinator {u.coordinator_id} did not answer ({u.error}): its spans are missing
        </p>
      ))}
      <div class="waterfall">
        {rows.map(({ span, depth, offsetMs, left, width }) => (
          <details key={span.span_id} class={`span-row svc-${span.service}`} data-testid="span" data-service={span.service}>
            <summary>
              <span class="span-name" style={{ paddingLeft: `${depth * 14}px` }}>
                <span class="svc">{span.service.replace(/^podium-/, "")}</span> {span.name}
              </span>
              <span class="span-duration mono" data-testid="span-duration">
                {formatDuration(span.duration_ms)}
              </span>
              <span class="span-track">
                <span class={`span-bar ${span.status.code === "ERROR" ? "failed" : ""}`} style={{ left: `${left}%`, width: `${width}%` }} title={`+${formatDuration(offsetMs)}`} />
              </span>
            </summary>
            <table class="table small">
              <tbody>
                <tr>
                  <th>kind · start</th>
                  <td class="mono">
                    {span.kind} · {span.start_time} (+{formatDuration(offsetMs)})
                  </td>
                </tr>
                <tr>
                  <th>span · parent</th>
                  <td class="mono">
                    {span.span_id} · {span.parent_span_id ?? "—"}
                  </td>
                </tr>
                <tr>
                  <th>status</th>
                  <td class={span.status.code === "ERROR" ? "error" : ""}>{span.status.code === "ERROR" ? `ERROR: ${span.status.message ?? ""}` : "ok"}</td>
                </tr>
                {Object.entries(span.attributes).map(([key, value]) => (
                  <tr key={key}>
                    <th class="mono">{key}</th>
                    <td class="mono">{String(value)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </details>
        ))}
      </div>
    </div>
  );
}
