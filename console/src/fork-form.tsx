/**
 * Forks the agent as it was at a point in time (`POST /agents/{id}/fork`, where replication is on) and
 * opens an instance of the fork. Without replication the gateway answers 412, shown as it is.
 */
import { useEffect, useState } from "preact/hooks";
import { api, ApiError, describeError } from "./api-client.js";
import type { Instance } from "./api-types.js";

interface Replication {
  state: string;
  lag_ms: number;
  last_sync_at: string | null;
  coordinator_id: string;
}

/** GET /agents/{id}/replication: its lag, or why there is nothing to fork from (412: not configured). */
function ReplicationLine({ agentId, onAvailable }: { agentId: string; onAvailable: (ok: boolean) => void }) {
  const [text, setText] = useState("Checking replication…");
  useEffect(() => {
    api<Replication>("GET", `/api/v1/agents/${encodeURIComponent(agentId)}/replication`)
      .then((r) => {
        onAvailable(true);
        setText(`Replication ${r.state}, lag ${r.lag_ms} ms${r.last_sync_at ? `, last sync ${new Date(r.last_sync_at).toLocaleTimeString()}` : ""}`);
      })
      .catch((err: unknown) => {
        onAvailable(false);
        setText(err instanceof ApiError && err.status === 412 ? "Replication is not configured on this cluster (--replicate-bucket): forks need it." : describeError(err));
      });
  }, [agentId]);
  return (
    <span class="muted" data-testid="replication">
      {text}
    </span>
  );
}

interface Forked {
  agent_id: string;
  source_agent_id: string;
  timestamp: string;
  restore_ms: number;
}

export function ForkForm({ agentId, deploymentId }: { agentId: string; deploymentId: string }) {
  const [open, setOpen] = useState(false);
  const [when, setWhen] = useState("");
  const [result, setResult] = useState<string | undefined>(undefined);
  const [available, setAvailable] = useState(false);
  if (!open) {
    return (
      <button type="button" onClick={() => setOpen(true)}>
        Fork at a point in time…
      </button>
    );
  }
  return (
    <form
      class="row card"
      onSubmit={(e) => {
        e.preventDefault();
        setResult("forking…");
        const timestamp = when ? new Date(when).toISOString() : undefined;
        api<Forked>("POST", `/api/v1/agents/${encodeURIComponent(agentId)}/fork`, timestamp ? { timestamp } : {})
          .then((forked) => api<Instance>("POST", "/api/v1/instances", { deployment_id: deploymentId, agent_id: forked.agent_id }))
          .then((instance) => (location.hash = `#/instances/${encodeURIComponent(instance.instance_id)}`))
          .catch((err: unknown) => setResult(describeError(err)));
      }}
    >
      <label>
        As it was at (local time; empty: latest)
        <input type="datetime-local" step="1" name="fork-at" value={when} onInput={(e) => setWhen(e.currentTarget.value)} />
      </label>
      <button type="submit" disabled={!available}>
        Fork and open
      </button>
      <ReplicationLine agentId={agentId} onAvailable={setAvailable} />
      <button type="button" onClick={() => setOpen(false)}>
        Close
      </button>
      {result && <span class="muted">{result}</span>}
    </form>
  );
}
