/**
 * A coordinator's Prometheus metrics (docs/metrics.md), read at scrape time from the instance manager
 * and, when configured, the agents' replication.
 */
import { MetricsRegistry, type Sample } from "../shared/metrics.js";
import type { InstanceManager } from "./instance-manager.js";
import type { AgentReplication } from "../replication/agent-replication.js";

export function coordinatorMetrics(manager: InstanceManager, replication: AgentReplication | undefined): MetricsRegistry {
  const labels = { coordinator_id: manager.coordinatorId };
  const registry = new MetricsRegistry().register(
    { name: "podium_instances", help: "Live instances (starting, ready, busy, stopping): those with a process.", type: "gauge", collect: () => [{ labels, value: manager.liveCount }] },
    { name: "podium_instances_hibernated", help: "Hibernated instances: registered, without a process.", type: "gauge", collect: () => [{ labels, value: manager.hibernatedCount }] },
    { name: "podium_hibernations_total", help: "Idle instances that hibernated.", type: "counter", collect: () => [{ labels, value: manager.counts.hibernated }] },
    { name: "podium_wakes_total", help: "Hibernated instances woken (by a message or a due schedule).", type: "counter", collect: () => [{ labels, value: manager.counts.woken }] },
    { name: "podium_instances_capacity", help: "Most live instances this coordinator takes.", type: "gauge", collect: () => [{ labels, value: manager.capacity }] },
    { name: "podium_instances_started_total", help: "Instances that became ready.", type: "counter", collect: () => [{ labels, value: manager.counts.started }] },
    {
      name: "podium_instances_ended_total",
      help: "Instances that ended, by final status (terminated: stopped on request; failed: crashed or never started).",
      type: "counter",
      collect: () => [
        { labels: { ...labels, status: "terminated" }, value: manager.counts.terminated },
        { labels: { ...labels, status: "failed" }, value: manager.counts.failed },
      ],
    },
    {
      name: "podium_instance_create_seconds",
      help: "CreateInstance calls that answered an instance (ready, or starting for a warm runner answered early; a woken hibernated one included), by duration.",
      type: "histogram",
      collect: () => manager.counts.createSeconds.samples(labels),
    },
    { name: "podium_turns_total", help: "Turns that ended (turn.done recorded), whether they succeeded or not.", type: "counter", collect: () => [{ labels, value: manager.counts.turns }] },
    { name: "podium_events_total", help: "Events recorded and streamed: the agents' and the platform's (rate: events/s).", type: "counter", collect: () => [{ labels, value: manager.counts.events }] },
    { name: "podium_coordinator_draining", help: "1 while the coordinator drains.", type: "gauge", collect: () => [{ labels, value: manager.isDraining ? 1 : 0 }] },
    {
      name: "podium_warm_runners",
      help: "Sandboxed runners made ahead for new agents, ready to be claimed, by runtime.",
      type: "gauge",
      collect: () => Object.entries(manager.warmRunnerStats().ready).map(([runtime, value]) => ({ labels: { ...labels, runtime }, value })),
    },
    {
      name: "podium_warm_runner_creates_total",
      help: "Creates of new agents that could use a warm runner, by outcome (claimed: served warm; missed: none was ready, started cold).",
      type: "counter",
      collect: () => {
        const stats = manager.warmRunnerStats();
        return [
          { labels: { ...labels, outcome: "claimed" }, value: stats.claims },
          { labels: { ...labels, outcome: "missed" }, value: stats.misses },
        ];
      },
    },
    {
      name: "podium_warm_runner_deaths_total",
      help: "Warm runners that exited before they were claimed (replaced).",
      type: "counter",
      collect: () => [{ labels, value: manager.warmRunnerStats().died }],
    },
  );
  if (!replication) return registry;
  const perAgent = (pick: (s: ReturnType<AgentReplication["statuses"]>[number]) => number | undefined): Sample[] =>
    replication.statuses().flatMap((s) => {
      const value = pick(s);
      return value === undefined ? [] : [{ labels: { ...labels, agent_id: s.agentId }, value }];
    });
  const counter = (name: string, help: string, value: () => number) => ({ name, help, type: "counter" as const, collect: () => [{ labels, value: value() }] });
  return registry.register(
    {
      name: "podium_replication_agents",
      help: "Agents replicated here, by state (replicating, restarting, fenced, stopped).",
      type: "gauge",
      collect: () => {
        const byState = new Map<string, number>([
          ["replicating", 0],
          ["restarting", 0],
          ["fenced", 0],
          ["stopped", 0],
        ]);
        for (const s of replication.statuses()) byState.set(s.state, (byState.get(s.state) ?? 0) + 1);
        return [...byState].map(([state, value]) => ({ labels: { ...labels, state }, value }));
      },
    },
    { name: "podium_replication_lag_seconds", help: "Age of the agent's oldest write not yet in S3 (0: caught up).", type: "gauge", collect: () => perAgent((s) => s.lagMs / 1000) },
    {
      name: "podium_replication_last_sync_timestamp_seconds",
      help: "When Litestream last reported an upload of the agent's databases (Unix time).",
      type: "gauge",
      collect: () => perAgent((s) => (s.lastSyncAt === undefined ? undefined : s.lastSyncAt / 1000)),
    },
    {
      name: "podium_replication_restores_total",
      help: "Agents restored from S3, by kind (clean: released after a final sync; reconciled: its coordinator was lost).",
      type: "counter",
      collect: () => {
        const c = replication.counters();
        return [
          { labels: { ...labels, kind: "clean" }, value: c.restoresClean },
          { labels: { ...labels, kind: "reconciled" }, value: c.restoresReconciled },
        ];
      },
    },
    {
      name: "podium_replication_releases_total",
      help: "Agents released (instance ended), by whether the final sync covered every write.",
      type: "counter",
      collect: () => {
        const c = replication.counters();
        return [
          { labels: { ...labels, synced: "true" }, value: c.releasesSynced },
          { labels: { ...labels, synced: "false" }, value: c.releasesUnsynced },
        ];
      },
    },
    counter("podium_replication_fenced_total", "Agents stopped here because another coordinator took their lease.", () => replication.counters().fenced),
    counter("podium_replication_forks_total", "Point-in-time forks restored here.", () => replication.counters().forks),
    counter("podium_replication_litestream_restarts_total", "Litestream processes restarted after dying.", () => replication.counters().litestreamRestarts),
  );
}
