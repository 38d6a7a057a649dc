/**
 * An instance's stored messages (`…/messages`, every inbound and outbound event with its seq) and logs
 * (`…/logs`), each searchable and followed: new records are fetched as the stream reports them.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import { api, describeError } from "./api-client.js";
import type { LogRecord, MessageRecord } from "./api-types.js";
import { VirtualList } from "./virtual-list.js";

interface Page<T> {
  items: T[];
  /** The cursor after these items. */
  next: number;
  more: boolean;
}

/** Everything after `cursor`, page by page (1000 a page), appended to `into`; returns the new cursor. */
async function drain<T>(load: (after: number) => Promise<Page<T>>, cursor: number, into: T[]): Promise<number> {
  for (;;) {
    const page = await load(cursor);
    into.push(...page.items);
    if (page.items.length === 0) return cursor;
    cursor = Math.max(cursor, page.next);
    if (!page.more) return cursor;
  }
}

function useRecords<T>(load: (after: number) => Promise<Page<T>>, tick: number, follow: boolean): { items: T[]; error: string | undefined; count: number } {
  const items = useRef<T[]>([]);
  const cursor = useRef(0);
  const busy = useRef(false);
  const [count, setCount] = useState(0);
  const [error, setError] = useState<string | undefined>(undefined);
  useEffect(() => {
    const pull = () => {
      if (busy.current) return;
      busy.current = true;
      drain(load, cursor.current, items.current)
        .then((next) => {
          cursor.current = next;
          setCount(items.current.length);
          setError(undefined);
        })
        .catch((err: unknown) => setError(describeError(err)))
        .finally(() => (busy.current = false));
    };
    pull();
    if (!follow) return undefined;
    const timer = setInterval(pull, 2000);
    return () => clearInterval(timer);
  }, [tick, follow]);
  return { items: items.current, error, count };
}

export function RecordsPanel({ instanceId, lastSeq }: { instanceId: string; lastSeq: number }) {
  const [kind, setKind] = useState<"messages" | "logs">("messages");
  const [search, setSearch] = useState("");
  const [follow, setFollow] = useState(true);
  const id = encodeURIComponent(instanceId);
  const messages = useRecords<MessageRecord>(
    async (after) => {
      const page = await api<{ messages: MessageRecord[]; next_after_seq: number | null }>("GET", `/api/v1/instances/${id}/messages?after_seq=${after}&limit=1000`);
      return { items: page.messages, next: page.next_after_seq ?? page.messages.at(-1)?.seq ?? after, more: page.next_after_seq !== null };
    },
    follow ? lastSeq : 0,
    follow,
  );
  const logs = useRecords<LogRecord>(
    async (after) => {
      const page = await api<{ logs: LogRecord[]; next_after: number | null }>("GET", `/api/v1/instances/${id}/logs?after=${after}&limit=1000`);
      return { items: page.logs, next: page.next_after ?? page.logs.at(-1)?.id ?? after, more: page.next_after !== null };
    },
    0,
    follow,
  );
  const needle = search.trim().toLowerCase();
  const rows: string[] =
    kind === "messages"
      ? messages.items.map((m) => `${m.seq}  ${m.timestamp.slice(11, 23)}  ${m.direction === "inbound" ? "→" : "←"} ${m.message_type}  ${JSON.stringify(m.content)}`)
      : logs.items.map((l) => `${l.timestamp.slice(11, 23)}  ${l.level.toUpperCase().padEnd(5)} ${l.source}  ${l.message}`);
  const shown = needle ? rows.filter((r) => r.toLowerCase().includes(needle)) : rows;
  const error = kind === "messages" ? messages.error : logs.error;
  return (
    <div class="records">
      <div class="row">
        <button type="button" class={kind === "messages" ? "active" : ""} onClick={() => setKind("messages")}>
          Messages ({messages.count})
        </button>
        <button type="button" class={kind === "logs" ? "active" : ""} onClick={() => setKind("logs")}>
          Logs ({logs.count})
        </button>
        <input name="search" type="search" placeholder="search" value={search} onInput={(e) => setSearch(e.currentTarget.value)} />
        <label class="inline">
          <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.currentTarget.checked)} /> follow
        </label>
        <span class="muted">{shown.length} shown</span>
      </div>
      {error && <p class="error">{error}</p>}
      <VirtualList class="records-list" count={shown.length} rowHeight={22} height={460} follow={follow} row={(i) => <span class="mono small">{shown[i]}</span>} />
    </div>
  );
}
