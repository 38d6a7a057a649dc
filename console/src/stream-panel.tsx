/**
 * One instance's live stream: the conversation (each turn's reply as it streams), a composer that sends
 * `process_message` on the `/connect` socket (plain text as {text}, or a JSON object as is), cancel,
 * the answer forms of open permission / question requests, and every event (virtualized).
 */
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api } from "./api-client.js";
import type { Json, JsonObject, MessageRecord } from "./api-types.js";
import type { EventStream } from "./use-event-stream.js";
import type { PendingRequest } from "./event-log.js";
import { VirtualList } from "./virtual-list.js";
import { newTrace, rememberedTraces, rememberTraces } from "./turn-traces.js";

function contentOf(text: string): JsonObject {
  const trimmed = text.trim();
  if (trimmed.startsWith("{")) {
    try {
      const value = JSON.parse(trimmed) as Json;
      if (typeof value === "object" && value !== null && !Array.isArray(value)) return value;
    } catch {
      // not JSON: sent as text
    }
  }
  return { text };
}

function RequestForm({ request, answer }: { request: PendingRequest; answer: (value: Json) => void }) {
  const [text, setText] = useState("");
  const c = request.content;
  const choices = Array.isArray(c.choices) ? c.choices.filter((x): x is string => typeof x === "string") : [];
  if (request.kind === "permission") {
    return (
      <div class="request card" data-request={request.requestId}>
        <strong>Permission requested</strong> {String(c.tool_name ?? "")} <span class="muted">{String(c.description ?? "")}</span>
        <pre class="mono small">{JSON.stringify(c.args ?? {}, null, 1)}</pre>
        <button type="button" onClick={() => answer({ approved: true, option_id: "allow_once" })}>
          Allow
        </button>
        <button type="button" class="danger" onClick={() => answer({ approved: false, option_id: "reject_once" })}>
          Reject
        </button>
      </div>
    );
  }
  return (
    <form
      class="request card"
      data-request={request.requestId}
      onSubmit={(e) => {
        e.preventDefault();
        answer(text);
      }}
    >
      <strong>Question</strong> {String(c.question ?? "")}
      {choices.map((choice) => (
        <button type="button" key={choice} onClick={() => answer(choice)}>
          {choice}
        </button>
      ))}
      <input name="answer" value={text} onInput={(e) => setText(e.currentTarget.value)} placeholder="answer" />
      <button type="submit">Answer</button>
    </form>
  );
}

/** The text of a turn's inbound message (a turn's id is that message's seq): its `text`, else its JSON. */
async function inboundText(instanceId: string, turn: number): Promise<string | undefined> {
  const page = await api<{ messages: MessageRecord[] }>("GET", `/api/v1/instances/${encodeURIComponent(instanceId)}/messages?after_seq=${turn - 1}&limit=1`);
  const message = page.messages[0];
  if (!message || message.seq !== turn || message.direction !== "inbound") return undefined;
  const content = message.content;
  return typeof content === "object" && content !== null && !Array.isArray(content) && typeof content.text === "string" ? content.text : JSON.stringify(content);
}

export function StreamPanel({ stream, instanceId }: { stream: EventStream; instanceId: string }) {
  const { log } = stream;
  const [draft, setDraft] = useState("");
  const [follow, setFollow] = useState(true);
  const [, setLoaded] = useState(0);
  const asked = useRef(new Set<number>());
  const turns = [...log.turns.values()].slice(-30);
  const traces = useMemo(() => rememberedTraces(instanceId), [instanceId]);
  // The trace ids of turns this page sent, kept for a reload of the page.
  useEffect(() => {
    let added = false;
    for (const t of turns) {
      if (t.traceId === undefined || traces[t.turn] === t.traceId) continue;
      traces[t.turn] = t.traceId;
      added = true;
    }
    if (added) rememberTraces(instanceId, traces);
  });
  // Turns replayed from history (or sent by another client) are shown with their message, read back.
  useEffect(() => {
    for (const t of turns) {
      if (t.sent !== undefined || asked.current.has(t.turn) || t.turn <= 0) continue;
      asked.current.add(t.turn);
      inboundText(instanceId, t.turn)
        .then((text) => {
          if (text === undefined) return;
          log.setSent(t.turn, text);
          setLoaded((n) => n + 1);
        })
        .catch(() => undefined); // shown without its message; not asked again
    }
  });
  const running = turns.filter((t) => !t.done);
  const send = () => {
    const content = contentOf(draft);
    // A sampled trace with every message: its turn's spans are recorded and linked from the turn.
    const trace = newTrace();
    if (stream.send({ type: "process_message", content, traceparent: trace.traceparent })) {
      log.noteSent(draft, trace.traceId);
      setDraft("");
    }
  };
  return (
    <div class="stream">
      <div class="conversation" data-testid="conversation">
        {turns.map((t) => {
          const traceId = t.traceId ?? traces[t.turn];
          return (
            <div key={t.turn} class="turn" data-turn={t.turn}>
              {t.sent !== undefined && <div class="bubble user">{t.sent}</div>}
              <div class={`bubble agent ${t.done ? "done" : "streaming"}`}>
                {t.reply || (t.done ? <span class="muted">(no text)</span> : <span class="muted">…</span>)}
                {t.error && <div class="error">{t.error}</div>}
              </div>
              {traceId && t.done && (
                <a class="trace-link small" data-testid="trace-link" href={`#/instances/${encodeURIComponent(instanceId)}/trace/${traceId}`}>
                  turn {t.turn} · trace {traceId.slice(0, 8)}… →
                </a>
              )}
            </div>
          );
        })}
      </div>
      {[...log.pending.values()].map((r) => (
        <RequestForm key={r.requestId} request={r} answer={(value) => stream.send({ type: "answer", request_id: r.requestId, value })} />
      ))}
      <form
        class="composer"
        onSubmit={(e) => {
          e.preventDefault();
          send();
        }}
      >
        <textarea
          name="message"
          rows={2}
          value={draft}
          placeholder={"Message (Enter sends; a JSON object is sent as the message's content)"}
          onInput={(e) => setDraft(e.currentTarget.value)}
          onKeyDown={(e) => {
            if (e.key === "Enter" && !e.shiftKey) {
              e.preventDefault();
              send();
            }
          }}
        />
        <button type="submit" disabled={!stream.connected || !draft.trim()}>
          Send
        </button>
        <button type="button" class="danger" disabled={!stream.connected || running.length === 0} onClick={() => stream.send({ type: "cancel", turn: 0 })}>
          Cancel turn
        </button>
      </form>
      <div class="row">
        <strong>Events</strong>
        <span class="muted" data-testid="event-count">
          {log.events.length} events, last seq {log.lastSeq}
        </span>
        <label class="inline">
          <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.currentTarget.checked)} /> follow
        </label>
      </div>
      <VirtualList
        class="events"
        count={log.events.length}
        rowHeight={22}
        height={320}
        follow={follow}
        row={(i) => {
          const e = log.events[i];
          if (!e) return null;
          return (
            <span class="mono small">
              <span class="seq">{e.seq}</span> <span class="time">{e.timestamp.slice(11, 23)}</span> <span class={`type t-${e.messageType.replace(/\W/g, "-")}`}>{e.messageType}</span>{" "}
              {e.content ? JSON.stringify(e.content).slice(0, 240) : ""}
            </span>
          );
        }}
      />
    </div>
  );
}
