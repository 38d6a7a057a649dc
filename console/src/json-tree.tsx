/** A JSON value as a collapsible tree (objects and arrays open to two levels). */
import type { Json } from "./api-types.js";

function Leaf({ value }: { value: Json }) {
  if (value === null) return <span class="j-null">null</span>;
  if (typeof value === "string") return <span class="j-str">{JSON.stringify(value)}</span>;
  if (typeof value === "number") return <span class="j-num">{String(value)}</span>;
  return <span class="j-bool">{String(value)}</span>;
}

export function JsonTree({ value, name, depth = 0 }: { value: Json; name?: string; depth?: number }) {
  const label = name !== undefined ? <span class="j-key">{name}: </span> : null;
  if (value === null || typeof value !== "object") {
    return (
      <div class="j-row" data-path={name}>
        {label}
        <Leaf value={value} />
      </div>
    );
  }
  const entries: [string, Json][] = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value);
  const summary = Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`;
  return (
    <details class="j-node" open={depth < 2}>
      <summary>
        {label}
        <span class="muted">{summary}</span>
      </summary>
      <div class="j-children">
        {entries.map(([k, v]) => (
          <JsonTree key={k} name={k} value={v} depth={depth + 1} />
        ))}
      </div>
    </details>
  );
}
