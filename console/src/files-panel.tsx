/**
 * The workspace (Chronicle) as a file tree; a file's history (every iteration that changed it) and a
 * line diff between any two of its iterations (`…/files/{path}/at/{iteration}`).
 */
import { useEffect, useState } from "preact/hooks";
import { api, describeError } from "./api-client.js";
import type { FileContent, FileEntry, Iteration } from "./api-types.js";
import { lineDiff } from "./line-diff.js";
import { usePolled } from "./use-polled.js";

function pathUrl(path: string): string {
  return path.split("/").map(encodeURIComponent).join("/");
}

function textOf(file: FileContent | undefined): string {
  if (!file) return "";
  if (file.encoding === "utf8") return file.content;
  return `(binary, ${file.size} bytes, ${file.hash})`;
}

function Diff({ base, path, from, to }: { base: string; path: string; from: number; to: number }) {
  const [texts, setTexts] = useState<{ before: string; after: string } | { error: string } | undefined>(undefined);
  useEffect(() => {
    setTexts(undefined);
    const at = (iteration: number) => (iteration === 0 ? Promise.resolve(undefined) : api<FileContent>("GET", `${base}/files/${pathUrl(path)}/at/${iteration}`));
    Promise.all([at(from), at(to)])
      .then(([before, after]) => setTexts({ before: textOf(before), after: textOf(after) }))
      .catch((err: unknown) => setTexts({ error: describeError(err) }));
  }, [base, path, from, to]);
  if (!texts) return <p class="muted">Loading…</p>;
  if ("error" in texts) return <p class="error">{texts.error}</p>;
  return (
    <pre class="diff mono small" data-testid="diff">
      {lineDiff(texts.before, texts.after).map((line, i) => (
        <div key={i} class={`d-${line.kind}`}>
          {line.kind === "added" ? "+ " : line.kind === "removed" ? "- " : "  "}
          {line.text}
        </div>
      ))}
    </pre>
  );
}

function History({ base, path, changes }: { base: string; path: string; changes: number }) {
  const history = usePolled(() => api<{ iterations: Iteration[] }>("GET", `${base}/files/${pathUrl(path)}/history`), [base, path, changes]);
  const iterations = history.data?.iterations ?? [];
  const sorted = [...iterations].sort((x, y) => x.iteration - y.iteration);
  const [pair, setPair] = useState<[number, number] | undefined>(undefined);
  const last = sorted.at(-1)?.iteration ?? 0;
  const previous = sorted.at(-2)?.iteration ?? 0;
  const [from, to] = pair ?? [previous, last];
  return (
    <div class="card" data-testid="file-history">
      <h3 class="mono">{path}</h3>
      {history.error && <p class="error">{history.error}</p>}
      <table class="table small">
        <thead>
          <tr>
            <th>Iteration</th>
            <th>Change</th>
            <th>Size</th>
            <th>When</th>
            <th>From</th>
            <th>To</th>
          </tr>
        </thead>
        <tbody>
          {sorted.map((it) => (
            <tr key={it.iteration} data-iteration={it.iteration}>
              <td>{it.iteration}</td>
              <td>{it.change}</td>
              <td>{it.size}</td>
              <td>{it.timestamp ? new Date(it.timestamp).toLocaleTimeString() : ""}</td>
              <td>
                <input type="radio" name="diff-from" checked={from === it.iteration} onChange={() => setPair([it.iteration, to])} />
              </td>
              <td>
                <input type="radio" name="diff-to" checked={to === it.iteration} onChange={() => setPair([from, it.iteration])} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {sorted.length > 0 && (
        <>
          <p class="muted small">
            Diff from iteration {from || "(none)"} to {to}
          </p>
          <Diff base={base} path={path} from={from} to={to} />
        </>
      )}
    </div>
  );
}

export function FilesPanel({ instanceId, changes }: { instanceId: string; changes: number }) {
  const base = `/api/v1/instances/${encodeURIComponent(instanceId)}`;
  const files = usePolled(() => api<{ entries: FileEntry[] }>("GET", `${base}/files?depth=32`), [base, changes]);
  const [selected, setSelected] = useState<string | undefined>(undefined);
  const entries = [...(files.data?.entries ?? [])].sort((x, y) => x.path.localeCompare(y.path));
  return (
    <div class="split files">
      <div class="card tree" data-testid="file-tree">
        <h3>Workspace</h3>
        {files.error && <p class="error">{files.error}</p>}
        {files.data && entries.length === 0 && <p class="muted">No files yet.</p>}
        {entries.map((e) => {
          const depth = e.path.split("/").length - 1;
          return e.type === "directory" ? (
            <div key={e.path} class="dir" style={{ paddingLeft: `${depth * 14}px` }}>
              {e.name}/
            </div>
          ) : (
            <button type="button" key={e.path} class={`file ${selected === e.path ? "active" : ""}`} style={{ paddingLeft: `${depth * 14 + 6}px` }} onClick={() => setSelected(e.path)}>
              {e.name}{" "}
              <span class="muted small">
                {e.size} B · it. {e.iteration}
              </span>
            </button>
          );
        })}
      </div>
      {selected ? <History base={base} path={selected} changes={changes} /> : <p class="muted">Pick a file to see its history.</p>}
    </div>
  );
}
