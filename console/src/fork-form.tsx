/**
 * Forks the agent as it was at a point in time (`POST /agents/{id}/fork`, where replication is on) and
 * opens an instance of the fork. Without replication the gateway answers 412, shown as it is.
 */
import { useState } from "preact/hooks";
import { api, describeError } from "./api-client.js";
import type { Instance } from "./api-types.js";

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
      <button type="submit">Fork and open</button>
      <button type="button" onClick={() => setOpen(false)}>
        Close
      </button>
      {result && <span class="muted">{result}</span>}
    </form>
  );
}
