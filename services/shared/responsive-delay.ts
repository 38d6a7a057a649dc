/**
 * A delay that counts only time in which this process kept running. A process that is starved of CPU
 * (or paused in GC) sees its timers fire late, all at once; a plain deadline then expires "early"
 * from the point of view of the work it was waiting for, which may have answered meanwhile without
 * being read yet. Here every tick of `stepMs` adds at most `2 * stepMs`, so a stall of the process
 * itself barely counts: a deadline on an answer from a peer measures the peer's silence, not ours.
 */
export function responsiveDelay(ms: number, signal?: AbortSignal, stepMs = 50): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    let counted = 0;
    let last = Date.now();
    let timer: NodeJS.Timeout;
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const tick = (): void => {
      const now = Date.now();
      counted += Math.min(now - last, 2 * stepMs);
      last = now;
      if (counted >= ms) done();
      else timer = setTimeout(tick, Math.min(stepMs, ms - counted));
    };
    timer = setTimeout(tick, Math.min(stepMs, ms));
    signal?.addEventListener("abort", done, { once: true });
  });
}
