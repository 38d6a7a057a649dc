/**
 * Coordinators as the public API shows them: the gateway's health, the live instances grouped by the
 * coordinator running them, and the Prometheus metrics the gateway serves (GET /metrics, with the key).
 * `podium dev` serves its coordinator's metrics there (load, capacity, draining, create latency, turns,
 * events/s from two polls, replication lag);
 * a cluster's gateway serves only its own, and each coordinator's are scraped on its --metrics-port.
 */
import { api, apiText } from "./api-client.js";
import type { Instance } from "./api-types.js";
import { parsePrometheus, type Sample } from "./prometheus-text.js";
import { usePolled } from "./use-polled.js";
import { useRef } from "preact/hooks";
import { counterRate, histogramMean, histogramQuantile, maxOf, sumOf } from "./metric-math.js";

const show = (n: number | undefined, unit = "") => (n === undefined ? "—" : n === Infinity ? "∞" : `${Number.isInteger(n) ? n : n.toFixed(3)}${unit}`);

export function CoordinatorsView() {
  const health = usePolled(() => api<{ status: string; coordinators?: number }>("GET", "/health"), [], 3000);
  const instances = usePolled(() => api<{ instances: Instance[] }>("GET", "/api/v1/instances"), [], 3000);
  const metrics = usePolled(async () => parsePrometheus(await apiText("/metrics")), [], 3000);
  const samples = metrics.data ?? [];
  // Events/s: each coordinator's podium_events_total between two polls.
  const lastEvents = useRef(new Map<string, { at: number; value: number }>());
  const eventRates = useRef(new Map<string, number | undefined>());
  const polledAt = useRef<Sample[] | undefined>(undefined);
  if (metrics.data && polledAt.current !== metrics.data) {
    polledAt.current = metrics.data;
    const at = Date.now();
    for (const s of metrics.data.filter((m) => m.name === "podium_events_total" && m.labels.coordinator_id)) {
      const id = s.labels.coordinator_id as string;
      eventRates.current.set(id, counterRate(lastEvents.current.get(id), { at, value: s.value }));
      lastEvents.current.set(id, { at, value: s.value });
    }
  }
  const ids = new Set<string>();
  for (const s of samples) if (s.labels.coordinator_id) ids.add(s.labels.coordinator_id);
  for (const i of instances.data?.instances ?? []) if (i.coordinator_id) ids.add(i.coordinator_id);
  const gateway = samples.filter((s) => s.name.startsWith("podium_gateway_"));
  return (
    <section>
      <h2>Coordinators</h2>
      <p>
        Gateway health: <strong data-testid="health">{health.data?.status ?? health.error ?? "…"}</strong>, {health.data?.coordinators ?? "?"} coordinator(s) it can place on
        {sumOf(samples, "podium_gateway_coordinators_not_answering") ? `, ${sumOf(samples, "podium_gateway_coordinators_not_answering")} not answering` : ""}.
      </p>
      {metrics.error && <p class="error">/metrics: {metrics.error}</p>}
      <table class="table" data-testid="coordinators">
        <thead>
          <tr>
            <th>Coordinator</th>
            <th>Live instances (this list)</th>
            <th>Load / capacity</th>
            <th>Hibernated</th>
            <th>Draining</th>
            <th>Starts running / waiting</th>
            <th>Create → ready mean / p50 ≤</th>
            <th>Turns</th>
            <th>Events/s</th>
            <th>Heartbeat lag max</th>
            <th>Replicated agents</th>
            <th>Replication lag max</th>
          </tr>
        </thead>
        <tbody>
          {[...ids].sort().map((id) => {
            const mine = samples.filter((s) => s.labels.coordinator_id === id);
            const capacity = sumOf(mine, "podium_instances_capacity");
            return (
              <tr key={id}>
                <td class="mono">{id}</td>
                <td>{(instances.data?.instances ?? []).filter((i) => i.coordinator_id === id).length}</td>
                <td>
                  {show(sumOf(mine, "podium_instances"))} / {show(capacity)}
                </td>
                <td>{show(sumOf(mine, "podium_instances_hibernated"))}</td>
                <td>{mine.length === 0 ? "—" : sumOf(mine, "podium_coordinator_draining") ? "yes" : "no"}</td>
                <td>
                  {show(sumOf(mine, "podium_instance_starts"))} / {show(sumOf(mine, "podium_instance_starts_waiting"))}
                </td>
                <td data-testid="create-latency">
                  {show(histogramMean(mine, "podium_instance_create_seconds"), " s")} / {show(histogramQuantile(mine, "podium_instance_create_seconds", 0.5), " s")}
                </td>
                <td data-testid="turns">{show(sumOf(mine, "podium_turns_total"))}</td>
                <td data-testid="events-rate">{show(eventRates.current.get(id))}</td>
                <td>{show(sumOf(mine, "podium_heartbeat_lag_max_seconds"), " s")}</td>
                <td>{show(sumOf(mine, "podium_replication_agents"))}</td>
                <td>{show(maxOf(mine, "podium_replication_lag_seconds"), " s")}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <p class="muted small">
        “—”: this gateway's /metrics does not carry that coordinator's numbers (a cluster's gateway serves only its own; scrape each coordinator's --metrics-port, docs/metrics.md).{" "}
        <code>podium dev</code> serves its coordinator's.
      </p>
      <h3>Gateway metrics</h3>
      <table class="table small">
        <tbody>
          {gateway.map((s, i) => (
            <tr key={i}>
              <td class="mono">
                {s.name}
                {Object.keys(s.labels).length
                  ? `{${Object.entries(s.labels)
                      .map(([k, v]) => `${k}="${v}"`)
                      .join(",")}}`
                  : ""}
              </td>
              <td>{s.value}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
