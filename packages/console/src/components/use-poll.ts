import { useCallback, useEffect, useRef, useState } from "react";
import { messageOf } from "../api/index.js";

/**
 * Loads `load()` now and every `intervalMs` (0: once), keeping the last good value; `reload()`
 * refreshes. A new `key` (e.g. the filter) starts over at once.
 */
export function usePoll<T>(load: () => Promise<T>, intervalMs: number, key = "") {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<string>();
  const loadRef = useRef(load);
  loadRef.current = load;
  const tick = useRef(0);

  // biome-ignore lint/correctness/useExhaustiveDependencies: a new key restarts the poll on purpose
  const reload = useCallback(async () => {
    const mine = ++tick.current;
    try {
      const value = await loadRef.current();
      if (mine === tick.current) {
        setData(value);
        setError(undefined);
      }
    } catch (err) {
      if (mine === tick.current) setError(messageOf(err));
    }
  }, [key]);

  useEffect(() => {
    void reload();
    if (intervalMs <= 0) return;
    const timer = setInterval(() => {
      if (document.visibilityState === "visible") void reload();
    }, intervalMs);
    return () => clearInterval(timer);
  }, [reload, intervalMs]);

  return { data, error, reload };
}
