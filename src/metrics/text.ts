/**
 * The Prometheus text exposition format (version 0.0.4), written by hand: the node needs counters,
 * gauges and one histogram, which is a few dozen lines, not a dependency (prom-client also keeps a
 * process-wide default registry, and nodes here must not share state: 20 run in one process in a bench).
 */

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export type Labels = Readonly<Record<string, string>>;

export interface Sample {
  /** Suffix added to the family name (`_bucket`, `_sum`, `_count`), empty for plain samples. */
  suffix?: string;
  labels?: Labels;
  value: number;
}

export interface MetricFamily {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  samples: Sample[];
}

const escapeHelp = (text: string): string => text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
const escapeLabel = (text: string): string => text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

function formatLabels(labels: Labels | undefined): string {
  const entries = Object.entries(labels ?? {});
  if (entries.length === 0) return '';
  return `{${entries.map(([key, value]) => `${key}="${escapeLabel(value)}"`).join(',')}}`;
}

export function render(families: readonly MetricFamily[]): string {
  const lines: string[] = [];
  for (const family of families) {
    lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} ${family.type}`);
    for (const sample of family.samples) {
      lines.push(`${family.name}${sample.suffix ?? ''}${formatLabels(sample.labels)} ${formatValue(sample.value)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** A counter per label set (label values joined as the key; label names are fixed per counter). */
export class Counter {
  private readonly values = new Map<string, { labels: Labels; value: number }>();

  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  inc(labels: Labels = {}, by = 1): void {
    const key = JSON.stringify(labels);
    const entry = this.values.get(key) ?? { labels, value: 0 };
    entry.value += by;
    this.values.set(key, entry);
  }

  get(labels: Labels = {}): number {
    return this.values.get(JSON.stringify(labels))?.value ?? 0;
  }

  family(common: Labels): MetricFamily {
    const samples = [...this.values.values()].map((entry) => ({ labels: { ...common, ...entry.labels }, value: entry.value }));
    // A counter nobody incremented yet still shows 0, so rate() has a starting point.
    if (samples.length === 0) samples.push({ labels: { ...common }, value: 0 });
    return { name: this.name, help: this.help, type: 'counter', samples };
  }
}

/** Cumulative buckets as Prometheus wants them; `le` bounds in the unit of the observations. */
export class Histogram {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;

  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: readonly number[],
  ) {
    this.counts = buckets.map(() => 0);
  }

  observe(value: number): void {
    this.sum += value;
    this.count += 1;
    this.buckets.forEach((bound, i) => {
      if (value <= bound) this.counts[i] = (this.counts[i] ?? 0) + 1;
    });
  }

  family(common: Labels): MetricFamily {
    const samples: Sample[] = this.buckets.map((bound, i) => ({
      suffix: '_bucket',
      labels: { ...common, le: formatValue(bound) },
      value: this.counts[i] ?? 0,
    }));
    samples.push(
      { suffix: '_bucket', labels: { ...common, le: '+Inf' }, value: this.count },
      { suffix: '_sum', labels: common, value: this.sum },
      { suffix: '_count', labels: common, value: this.count },
    );
    return { name: this.name, help: this.help, type: 'histogram', samples };
  }
}

export const gauge = (name: string, help: string, samples: Sample[]): MetricFamily => ({ name, help, type: 'gauge', samples });
export const counter = (name: string, help: string, samples: Sample[]): MetricFamily => ({ name, help, type: 'counter', samples });
