/**
 * The agent's state as a tree, with a timeline of its versions: pick one and see the state as it was
 * then (`GET …/state?at=V`) and the JSON Patch that made it. Follows new versions while on the latest.
 */
import { useEffect, useState } from "preact/hooks";
import { api, describeError } from "./api-client.js";
import type { Json, StatePatch } from "./api-types.js";
import { JsonTree } from "./json-tree.js";
import { usePolled } from "./use-polled.js";

interface StateAt {
  version: number;
  state: Json;
  patches?: StatePatch[];
}

export function StatePanel({ instanceId, changes }: { instanceId: string; changes: number }) {
  const base = `/api/v1/instances/${encodeURIComponent(instanceId)}/state`;
  const current = usePolled(() => api<StateAt>("GET", base), [base, changes]);
  const history = usePolled(() => api<{ version: number; patches: StatePatch[] }>("GET", `${base}?since=0`), [base, changes]);
  const latest = current.data?.version ?? 0;
  const [picked, setPicked] = useState<number | undefined>(undefined);
  const version = picked ?? latest;
  const [at, setAt] = useState<{ data?: StateAt; error?: string }>({});
  useEffect(() => {
    if (picked === undefined || picked === latest) return;
    setAt({});
    api<StateAt>("GET", `${base}?at=${picked}`)
      .then((data) => setAt({ data }))
      .catch((err: unknown) => setAt({ error: describeError(err) }));
  }, [base, picked, latest]);
  const shown = picked === undefined || picked === latest ? current.data : at.data;
  const patches = history.data?.patches ?? [];
  const versions = patches.map((p) => p.version);
  const oldest = versions[0] ?? latest;
  const patch = (picked !== undefined && picked !== latest ? at.data?.patches : patches.filter((p) => p.version === latest)) ?? [];
  return (
    <div class="state">
      <div class="row timeline" data-testid="timeline">
        <button type="button" disabled={version <= oldest || version <= 0} onClick={() => setPicked(Math.max(0, version - 1))}>
          ◀ Older
        </button>
        <input
          type="range"
          name="version"
          min={Math.min(oldest, latest)}
          max={latest}
          value={version}
          onInput={(e) => setPicked(Number(e.currentTarget.value))}
        />
        <button type="button" disabled={version >= latest} onClick={() => setPicked(version + 1 >= latest ? undefined : version + 1)}>
          Newer ▶
        </button>
        <span data-testid="state-version">
          version {version} of {latest}
        </span>
        {picked !== undefined && picked !== latest && (
          <button type="button" onClick={() => setPicked(undefined)}>
            Latest
          </button>
        )}
      </div>
      <div class="versions">
        {versions.map((v) => (
          <button type="button" key={v} class={`tick ${v === version ? "active" : ""}`} title={patches.find((p) => p.version === v)?.timestamp ?? ""} onClick={() => setPicked(v === latest ? undefined : v)}>
            {v}
          </button>
        ))}
      </div>
      {current.error && <p class="error">{current.error}</p>}
      {history.error && <p class="muted">History: {history.error}</p>}
      {at.error && <p class="error">{at.error}</p>}
      <div class="split">
        <div class="card" data-testid="state-tree">
          <h3>State at version {shown?.version ?? version}</h3>
          {shown ? <JsonTree value={shown.state} /> : <p class="muted">Loading…</p>}
        </div>
        <div class="card" data-testid="state-patch">
          <h3>Patch that made version {version}</h3>
          {patch.length === 0 && <p class="muted">{version === 0 ? "The initial state." : "No patch recorded for this version."}</p>}
          {patch.map((p) => (
            <div key={p.version}>
              <p class="muted small">{p.timestamp}</p>
              <pre class="mono small patch">{p.patch.map((op) => JSON.stringify(op)).join("\n")}</pre>
            </div>
          ))}
        </div>
      </div>
    </div>
  );
}
