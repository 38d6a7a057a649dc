/**
 * One instance: its status, stop and fork, and tabs for the live stream, the state timeline, messages and
 * logs, and the workspace. The `/connect` stream stays open across tabs; the other tabs reload when it
 * reports a new state version or workspace change.
 */
import { useState } from "preact/hooks";
import { api, ApiError, describeError, isObject } from "./api-client.js";
import type { Instance } from "./api-types.js";
import { useEventStream } from "./use-event-stream.js";
import { usePolled } from "./use-polled.js";
import { StreamPanel } from "./stream-panel.js";
import { StatePanel } from "./state-panel.js";
import { RecordsPanel } from "./records-panel.js";
import { FilesPanel } from "./files-panel.js";
import { ForkForm } from "./fork-form.js";
import { TracePanel } from "./trace-panel.js";

const TABS: [string, string][] = [
  ["stream", "Stream"],
  ["state", "State"],
  ["records", "Messages & logs"],
  ["files", "Workspace"],
];

/** GET /instances/{id}; an ended instance answers 404 with its final record in `instance`. */
async function loadInstance(id: string): Promise<Instance> {
  try {
    return await api<Instance>("GET", `/api/v1/instances/${encodeURIComponent(id)}`);
  } catch (err) {
    const ended = err instanceof ApiError && err.status === 404 ? err.body.instance : undefined;
    if (isObject(ended)) return ended as unknown as Instance;
    throw err;
  }
}

/** `traceId`: with tab "trace", the trace shown (a turn's link from the stream). */
export function InstanceView({ instanceId, tab, traceId }: { instanceId: string; tab: string; traceId?: string | undefined }) {
  const stream = useEventStream(instanceId);
  const { log } = stream;
  const instance = usePolled(() => loadInstance(instanceId), [instanceId, log.terminated], 3000);
  const [actionError, setActionError] = useState<string | undefined>(undefined);
  const i = instance.data;
  const stop = () =>
    api<Instance>("DELETE", `/api/v1/instances/${encodeURIComponent(instanceId)}`)
      .then(instance.reload)
      .catch((err: unknown) => setActionError(describeError(err)));
  return (
    <section class="instance">
      <div class="row header">
        <h2 class="mono">{instanceId}</h2>
        {i && (
          <span class={`status ${i.status}`} data-testid="instance-status">
            {i.status}
          </span>
        )}
        <span class={stream.connected ? "live" : "muted"}>{stream.connected ? "● live" : log.terminated ? `ended (${log.terminated})` : "○ not connected"}</span>
        <span class="spacer" />
        <button type="button" class="danger" disabled={!i || ["terminated", "failed", "stopping"].includes(i.status)} onClick={stop}>
          Stop instance
        </button>
      </div>
      {i && (
        <p class="muted small">
          agent <span class="mono">{i.agent_id}</span> · {i.deployment_id} · {i.runtime} · coordinator <span class="mono">{i.coordinator_id}</span>
          {i.pid ? ` · pid ${i.pid}` : ""} · queued {i.queued_messages}
          {i.exit ? ` · exit ${i.exit.reason}` : ""}
        </p>
      )}
      {i && <ForkForm agentId={i.agent_id} deploymentId={i.deployment_id} />}
      {(instance.error || actionError || stream.error) && <p class="error">{actionError ?? stream.error ?? instance.error}</p>}
      <nav class="tabs">
        {TABS.map(([id, label]) => (
          <a key={id} href={`#/instances/${encodeURIComponent(instanceId)}/${id}`} class={tab === id ? "active" : ""}>
            {label}
          </a>
        ))}
      </nav>
      {tab === "stream" && <StreamPanel stream={stream} instanceId={instanceId} />}
      {tab === "state" && <StatePanel instanceId={instanceId} changes={log.stateDeltas} />}
      {tab === "records" && <RecordsPanel instanceId={instanceId} lastSeq={log.lastSeq} />}
      {tab === "files" && <FilesPanel instanceId={instanceId} changes={log.workspaceChanges} />}
      {tab === "trace" && traceId && <TracePanel instanceId={instanceId} traceId={traceId} />}
    </section>
  );
}
