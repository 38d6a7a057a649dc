/** Live instances: filter by status, deployment and agent; create one (or resume an agent by its id); stop one. */
import { useState } from "preact/hooks";
import { api, describeError } from "./api-client.js";
import type { Deployment, Instance } from "./api-types.js";
import { usePolled } from "./use-polled.js";

const STATUSES = ["", "starting", "ready", "busy", "stopping", "hibernated"];

/** One <option> per deployment, by id. */
function DeploymentOptions({ deployments }: { deployments: Deployment[] }) {
  return (
    <>
      {deployments.map((d) => (
        <option key={d.deployment_id} value={d.deployment_id}>
          {d.deployment_id}
        </option>
      ))}
    </>
  );
}

function CreateForm({ deployments, onCreated }: { deployments: Deployment[]; onCreated: (i: Instance) => void }) {
  const [deploymentId, setDeploymentId] = useState("");
  const [agentId, setAgentId] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  const chosen = deploymentId || deployments[0]?.deployment_id || "";
  return (
    <form
      class="row card"
      onSubmit={(e) => {
        e.preventDefault();
        setBusy(true);
        setError(undefined);
        api<Instance>("POST", "/api/v1/instances", { deployment_id: chosen, ...(agentId.trim() ? { agent_id: agentId.trim() } : {}) })
          .then(onCreated)
          .catch((err: unknown) => setError(describeError(err)))
          .finally(() => setBusy(false));
      }}
    >
      <label>
        Deployment
        <select name="deployment" value={chosen} onChange={(e) => setDeploymentId(e.currentTarget.value)}>
          <DeploymentOptions deployments={deployments} />
        </select>
      </label>
      <label>
        Agent id (to resume an agent)
        <input name="agent-id" placeholder="new agent" value={agentId} onInput={(e) => setAgentId(e.currentTarget.value)} />
      </label>
      <button type="submit" disabled={busy || !chosen}>
        {busy ? "Creating…" : agentId.trim() ? "Resume agent" : "Create instance"}
      </button>
      {error && <span class="error">{error}</span>}
    </form>
  );
}

export function InstancesView() {
  const [status, setStatus] = useState("");
  const [deployment, setDeployment] = useState("");
  const [agent, setAgent] = useState("");
  const [actionError, setActionError] = useState<string | undefined>(undefined);
  const deployments = usePolled(() => api<{ deployments: Deployment[] }>("GET", "/api/v1/deployments"), []);
  const query = new URLSearchParams({ ...(deployment ? { deployment_id: deployment } : {}), ...(agent.trim() ? { agent_id: agent.trim() } : {}) });
  const instances = usePolled(() => api<{ instances: Instance[] }>("GET", `/api/v1/instances?${query}`), [query.toString()], 2000);
  const shown = (instances.data?.instances ?? []).filter((i) => !status || i.status === status);
  const stop = (id: string) => {
    setActionError(undefined);
    api<Instance>("DELETE", `/api/v1/instances/${encodeURIComponent(id)}`)
      .then(instances.reload)
      .catch((err: unknown) => setActionError(describeError(err)));
  };
  return (
    <section>
      <h2>Instances</h2>
      <CreateForm deployments={deployments.data?.deployments ?? []} onCreated={(i) => (location.hash = `#/instances/${encodeURIComponent(i.instance_id)}`)} />
      <div class="row filters">
        <label>
          Status
          <select name="status-filter" value={status} onChange={(e) => setStatus(e.currentTarget.value)}>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s || "any"}
              </option>
            ))}
          </select>
        </label>
        <label>
          Deployment
          <select name="deployment-filter" value={deployment} onChange={(e) => setDeployment(e.currentTarget.value)}>
            <option value="">any</option>
            <DeploymentOptions deployments={deployments.data?.deployments ?? []} />
          </select>
        </label>
        <label>
          Agent id
          <input name="agent-filter" value={agent} onInput={(e) => setAgent(e.currentTarget.value)} placeholder="agent-…" />
        </label>
      </div>
      {instances.error && <p class="error">{instances.error}</p>}
      {actionError && <p class="error">{actionError}</p>}
      <table class="table instances">
        <thead>
          <tr>
            <th>Instance</th>
            <th>Agent</th>
            <th>Deployment</th>
            <th>Status</th>
            <th>Coordinator</th>
            <th>Last seq</th>
            <th>Queued</th>
            <th>Created</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {shown.map((i) => (
            <tr key={i.instance_id} data-instance={i.instance_id}>
              <td>
                <a href={`#/instances/${encodeURIComponent(i.instance_id)}`}>{i.instance_id}</a>
              </td>
              <td class="mono">{i.agent_id}</td>
              <td>{i.deployment_id}</td>
              <td>
                <span class={`status ${i.status}`}>{i.status}</span>
              </td>
              <td class="mono">{i.coordinator_id}</td>
              <td>{i.last_seq}</td>
              <td>{i.queued_messages}</td>
              <td>{i.created_at ? new Date(i.created_at).toLocaleTimeString() : ""}</td>
              <td>
                <button type="button" class="danger" onClick={() => stop(i.instance_id)}>
                  Stop
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {instances.data && shown.length === 0 && <p class="muted">No live instances{status || deployment || agent ? " match" : ""}.</p>}
    </section>
  );
}
