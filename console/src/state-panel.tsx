/**
 * The agent's state as a tree, with a timeline of its versions (the last 200 as ticks, all on the slider):
 * pick one and see the state as it was then and the JSON Patch that made it (`GET …/state?at=V`). Follows
 * new versions while on the latest.
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
  const latest = current.data?.version ?? 0;
  const [picked, setPicked] = useState<number | undefined>(undefined);
  const version = Math.min(picked ?? latest, latest);
  // The state at a version and the patch that made it (kept from the newest snapshot on: older is 400).
  const [at, setAt] = useState<{ version: number; data?: StateAt; error?: string } | undefined>(undefined);
  useEffect(() => {
    if (!current.data) return;
    let stale = false;
    api<StateAt>("GET", `${base}?at=${version}`)
      .then((data) => !stale && setAt({ version, data }))
      .catch((err: unknown) => !stale && setAt({ version, error: describeError(err) }));
    return () => {
      stale = true;
    };
  }, [base, version, current.data]);
  const shown = at?.version === version ? at : undefined;
  const patches = shown?.data?.patches ?? [];
  const first = Math.max(0, latest - 199);
  const ticks = Array.from({ length: latest - first + 1 }, (_, i) => first + i);
  const pick = (v: number) => setPicked(v >= latest ? undefined : Math.max(0, v));
  return (
    <div class="state">
      <div class="row timeline" data-testid="timeline">
        <button type="button" disabled={version <= 0} onClick={() => pick(version - 1)}>
          ◀ Older
        </button>
        <input type="range" name="version" min={0} max={latest} value={version} onInput={(e) => pick(Number(e.currentTarget.value))} />
        <button type="button" disabled={version >= latest} onClick={() => pick(version + 1)}>
          Newer ▶
        </button>
        <span data-testid="state-version">
          version {version} of {latest}
        </span>
        {picked !== undefined && (
          <button type="button" onClick={() => setPicked(undefined)}>
            Latest (follow)
          </button>
        )}
      </div>
      <div class="versions">
        {ticks.map((v) => (
          <button type="button" key={v} class={`tick ${v === version ? "active" : ""}`} onClick={() => pick(v)}>
            {v}
          </button>
        ))}
      </div>
      {current.error && <p class="error">{current.error}</p>}
      {shown?.error && (
        <p class="error">
          Version {version}: {shown.error}
        </p>
      )}
      <div class="split">
        <div class="card" data-testid="state-tree">
          <h3>State at version {version}</h3>
          {shown?.data ? <JsonTree value={shown.data.state} /> : <p class="muted">{shown ? "Not available." : "Loading…"}</p>}
        </div>
        <div class="card" data-testid="state-patch">
          <h3>Patch that made version {version}</h3>
          {shown?.data && patches.length === 0 && <p class="muted">{version === 0 ? "The empty state before the first version." : "No patch recorded for this version."}</p>}
          {patches.map((p) => (
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
