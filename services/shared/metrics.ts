/**
 * Prometheus text exposition (format 0.0.4) without a client library: metrics are read at scrape time
 * from the objects that already hold the numbers (instance manager, replication), so nothing is
 * instrumented twice and a scrape costs one pass over live agents. docs/metrics.md lists every metric.
 */
export type MetricType = "counter" | "gauge" | "histogram";

export interface Sample {
  labels?: Record<string, string>;
  value: number;
  /** After the family's name: a histogram's `_bucket`, `_sum` and `_count` series. */
  suffix?: "_bucket" | "_sum" | "_count";
}

export interface MetricFamily {
  /** `podium_…`; counters end in `_total`. */
  name: string;
  help: string;
  type: MetricType;
  collect(): Sample[] | number | Promise<Sample[] | number>;
}

export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

export class MetricsRegistry {
  private readonly families = new Map<string, MetricFamily>();

  register(...families: MetricFamily[]): this {
    for (const family of families) {
      if (!NAME.test(family.name)) throw new RangeError(`invalid metric name ${family.name}`);
      if (family.type === "counter" && !family.name.endsWith("_total")) throw new RangeError(`counter ${family.name} must end in _total`);
      if (this.families.has(family.name)) throw new RangeError(`metric ${family.name} is registered twice`);
      this.families.set(family.name, family);
    }
    return this;
  }

  /** Every family, in registration order; a family whose collect() fails is skipped, not fatal. */
  async render(): Promise<string> {
    const lines: string[] = [];
    for (const family of this.families.values()) {
      let samples: Sample[];
      try {
        const collected = await family.collect();
        samples = typeof collected === "number" ? [{ value: collected }] : collected;
      } catch {
        continue;
      }
      lines.push(`# HELP ${family.name} ${family.help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`, `# TYPE ${family.name} ${family.type}`);
      for (const sample of samples) {
        const labels = Object.entries(sample.labels ?? {});
        for (const [key] of labels) if (!LABEL.test(key)) throw new RangeError(`invalid label ${key} on ${family.name}`);
        const text = labels.length === 0 ? "" : `{${labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}`;
        lines.push(`${family.name}${sample.suffix ?? ""}${text} ${formatValue(sample.value)}`);
      }
    }
    return lines.join("\n") + "\n";
  }
}

/** Observations counted into fixed buckets (upper bounds, ascending), as a Prometheus histogram's series. */
export class Histogram {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = bounds.map(() => 0);
  }

  observe(value: number): void {
    for (let i = 0; i < this.bounds.length; i++) if (value <= (this.bounds[i] as number)) this.counts[i] = (this.counts[i] as number) + 1;
    this.sum += value;
    this.count++;
  }

  /** Cumulative `_bucket` series (le, then +Inf), `_sum` and `_count`, with `labels` on each. */
  samples(labels: Record<string, string> = {}): Sample[] {
    return [
      ...this.bounds.map((le, i) => ({ labels: { ...labels, le: String(le) }, value: this.counts[i] as number, suffix: "_bucket" as const })),
      { labels: { ...labels, le: "+Inf" }, value: this.count, suffix: "_bucket" },
      { labels, value: this.sum, suffix: "_sum" },
      { labels, value: this.count, suffix: "_count" },
    ];
  }
}

/** Several registries as one exposition (e.g. the gateway's and, in dev mode, the in-process coordinator's). */
export async function renderAll(registries: MetricsRegistry[]): Promise<string> {
  return (await Promise.all(registries.map((r) => r.render()))).join("");
}
