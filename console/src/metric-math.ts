/** Numbers derived from Prometheus samples for the console: sums and maxima, a histogram's mean and quantile, a counter's rate. */
import type { Sample } from "./prometheus-text.js";

/** The sum of a metric's samples (over its labels); undefined when it has none. */
export function sumOf(samples: Sample[], name: string): number | undefined {
  const found = samples.filter((s) => s.name === name);
  return found.length === 0 ? undefined : found.reduce((total, s) => total + s.value, 0);
}

/** The largest of a metric's samples; undefined when it has none. */
export function maxOf(samples: Sample[], name: string): number | undefined {
  const found = samples.filter((s) => s.name === name);
  return found.length === 0 ? undefined : Math.max(...found.map((s) => s.value));
}

/** `name_sum / name_count` of a histogram; undefined before its first observation. */
export function histogramMean(samples: Sample[], name: string): number | undefined {
  const count = sumOf(samples, `${name}_count`);
  const total = sumOf(samples, `${name}_sum`);
  return count && total !== undefined ? total / count : undefined;
}

/** The smallest bucket bound holding quantile `q` of a histogram's observations (Infinity: above the last bound). */
export function histogramQuantile(samples: Sample[], name: string, q: number): number | undefined {
  const buckets = new Map<number, number>();
  for (const s of samples) {
    if (s.name !== `${name}_bucket` || s.labels.le === undefined) continue;
    const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
    buckets.set(le, (buckets.get(le) ?? 0) + s.value);
  }
  const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
  const total = sorted.at(-1)?.[1] ?? 0;
  if (total === 0) return undefined;
  return sorted.find(([, count]) => count >= q * total)?.[0];
}

/** Per-second rate of a counter between two readings (undefined on the first, or after a restart reset it). */
export function counterRate(previous: { at: number; value: number } | undefined, now: { at: number; value: number }): number | undefined {
  if (!previous || now.at <= previous.at || now.value < previous.value) return undefined;
  return ((now.value - previous.value) * 1000) / (now.at - previous.at);
}
