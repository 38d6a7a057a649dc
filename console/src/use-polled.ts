/** Loads a value from the API, again every `intervalMs` (when given) and on reload(); keeps the last good value. */
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { describeError } from "./api-client.js";

export interface Polled<T> {
  data: T | undefined;
  error: string | undefined;
  reload: () => void;
}

export function usePolled<T>(load: () => Promise<T>, deps: readonly unknown[], intervalMs?: number): Polled<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const generation = useRef(0);
  const reload = useCallback(() => {
    const mine = ++generation.current;
    load()
      .then((value) => {
        if (mine !== generation.current) return;
        setData(value);
        setError(undefined);
      })
      .catch((err: unknown) => {
        if (mine === generation.current) setError(describeError(err));
      });
  }, deps);
  useEffect(() => {
    reload();
    if (!intervalMs) return undefined;
    const timer = setInterval(reload, intervalMs);
    return () => {
      clearInterval(timer);
      generation.current++;
    };
  }, [reload, intervalMs]);
  return { data, error, reload };
}
