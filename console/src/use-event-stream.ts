/**
 * The `/connect` WebSocket of one instance, replayed from its first event (`after_seq=0`) and followed
 * live; on a drop (e.g. 4008 for a slow tab) it reconnects with `after_seq` = the last seq it has, so
 * nothing is lost or shown twice. Renders are batched: one per animation frame, at most ~10 a second.
 */
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { connectUrl } from "./api-client.js";
import type { JsonObject, StreamEvent } from "./api-types.js";
import { EventLog } from "./event-log.js";

export interface EventStream {
  log: EventLog;
  /** Bumped when events arrived (at most ~10 times a second). */
  version: number;
  connected: boolean;
  error: string | undefined;
  send(frame: JsonObject): boolean;
}

export function useEventStream(instanceId: string): EventStream {
  const log = useMemo(() => new EventLog(), [instanceId]);
  const [version, setVersion] = useState(0);
  const [connected, setConnected] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  const socket = useRef<WebSocket | undefined>(undefined);
  useEffect(() => {
    let closed = false;
    let frame = 0;
    let retry: ReturnType<typeof setTimeout> | undefined;
    // At most ~10 renders a second while events pour in: each render is a few DOM rows, but a flood of
    // 10,000 events over 60 frames a second would spend the tab's time re-rendering, not reading.
    let renderedAt = 0;
    const schedule = () => {
      if (frame !== 0) return;
      frame = requestAnimationFrame(() => {
        const wait = renderedAt + 100 - performance.now();
        const render = () => {
          frame = 0;
          renderedAt = performance.now();
          setVersion((v) => v + 1);
        };
        if (wait <= 0) render();
        else {
          frame = -1;
          setTimeout(render, wait);
        }
      });
    };
    const open = () => {
      const ws = new WebSocket(connectUrl(instanceId, log.lastSeq));
      socket.current = ws;
      ws.onopen = () => {
        setConnected(true);
        setError(undefined);
      };
      ws.onmessage = (message: MessageEvent<string>) => {
        const data = JSON.parse(message.data) as StreamEvent | { type: "error"; error: { code: string; message: string } };
        if ("messageType" in data) log.append(data);
        else setError(`${data.error.code}: ${data.error.message}`);
        schedule();
      };
      ws.onclose = (close) => {
        setConnected(false);
        if (closed || log.terminated !== undefined) return;
        if (close.code !== 1000) setError(close.code === 4008 ? "too slow: reconnecting" : `disconnected (${close.code}${close.reason ? " " + close.reason : ""}); reconnecting`);
        retry = setTimeout(open, close.code === 4008 ? 0 : 1000);
      };
    };
    open();
    return () => {
      closed = true;
      if (retry) clearTimeout(retry);
      if (frame > 0) cancelAnimationFrame(frame);
      socket.current?.close(1000);
    };
  }, [instanceId, log]);
  return {
    log,
    version,
    connected,
    error,
    send(frame) {
      const ws = socket.current;
      if (!ws || ws.readyState !== WebSocket.OPEN) return false;
      ws.send(JSON.stringify(frame));
      return true;
    },
  };
}
