/**
 * A small Prometheus text-format registry (exposition format 0.0.4): counters,
 * gauges and histograms with labels. Enough for /metrics without a dependency.
 */
type Labels = Readonly<Record<string, string>>;

const NEEDS_ESCAPE = /[\\"\n]/;

function escapeLabelValue(value: string): string {
  return NEEDS_ESCAPE.test(value) ? value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') : value;
}

// Called for every request (a counter and a histogram): a loop rather than
// sort/map/join and three replaces per value, which cost 1.4% of an append's CPU.
function labelKey(labels: Labels): string {
  const keys = Object.keys(labels);
  if (keys.length === 0) return '';
  if (keys.length > 1) keys.sort();
  let out = '{';
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    out += `${i === 0 ? '' : ','}${k}="${escapeLabelValue(String(labels[k]))}"`;
  }
  return out + '}';
}

interface Family {
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  render(name: string): string[];
}

export class Counter {
  private readonly values = new Map<string, number>();
  inc(labels: Labels = {}, by = 1): void {
    const key = labelKey(labels);
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }
  render(name: string): string[] {
    return [...this.values].map(([k, v]) => `${name}${k} ${v}`);
  }
}

export class Gauge {
  private readonly values = new Map<string, number>();
  set(value: number, labels: Labels = {}): void {
    this.values.set(labelKey(labels), value);
  }
  add(by: number, labels: Labels = {}): void {
    const key = labelKey(labels);
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }
  render(name: string): string[] {
    return [...this.values].map(([k, v]) => `${name}${k} ${v}`);
  }
}

export class Histogram {
  private readonly series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();
  constructor(private readonly buckets: readonly number[]) {}
  observe(value: number, labels: Labels = {}): void {
    const key = labelKey(labels);
    let s = this.series.get(key);
    if (s === undefined) {
      s = { labels, counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    this.buckets.forEach((b, i) => {
      if (value <= b) s.counts[i]!++;
    });
    s.sum += value;
    s.count++;
  }
  render(name: string): string[] {
    const lines: string[] = [];
    for (const s of this.series.values()) {
      this.buckets.forEach((b, i) =>
        lines.push(`${name}_bucket${labelKey({ ...s.labels, le: String(b) })} ${s.counts[i]}`),
      );
      lines.push(`${name}_bucket${labelKey({ ...s.labels, le: '+Inf' })} ${s.count}`);
      lines.push(`${name}_sum${labelKey(s.labels)} ${s.sum}`);
      lines.push(`${name}_count${labelKey(s.labels)} ${s.count}`);
    }
    return lines;
  }
}

export class Registry {
  private readonly families = new Map<string, Family>();

  private add<T extends Counter | Gauge | Histogram>(name: string, help: string, type: Family['type'], metric: T): T {
    this.families.set(name, { help, type, render: (n) => metric.render(n) });
    return metric;
  }
  counter(name: string, help: string): Counter {
    return this.add(name, help, 'counter', new Counter());
  }
  gauge(name: string, help: string): Gauge {
    return this.add(name, help, 'gauge', new Gauge());
  }
  histogram(name: string, help: string, buckets: readonly number[]): Histogram {
    return this.add(name, help, 'histogram', new Histogram(buckets));
  }
  render(): string {
    const out: string[] = [];
    for (const [name, f] of this.families) {
      out.push(`# HELP ${name} ${f.help}`, `# TYPE ${name} ${f.type}`, ...f.render(name));
    }
    return out.join('\n') + '\n';
  }
}

/** The replica's metrics. */
export function serverMetrics() {
  const registry = new Registry();
  return {
    registry,
    requests: registry.counter('e2ekv_http_requests_total', 'HTTP requests by route, method and status.'),
    latency: registry.histogram(
      'e2ekv_http_request_duration_seconds',
      'HTTP request latency by route.',
      [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    ),
    appends: registry.counter('e2ekv_appends_total', 'Accepted appends (batches).'),
    entries: registry.counter('e2ekv_entries_appended_total', 'Accepted log entries.'),
    rejections: registry.counter('e2ekv_verification_failures_total', 'Refused appends and requests by error code.'),
    storageBytes: registry.gauge(
      'e2ekv_storage_bytes',
      'Bytes of entries and blobs accepted since start, per process.',
    ),
    peers: registry.gauge('e2ekv_peers', 'Configured replication peers.'),
    peerUp: registry.gauge('e2ekv_peer_up', '1 when the last anti-entropy round with the peer succeeded, else 0.'),
    peerLastSuccess: registry.gauge(
      'e2ekv_peer_last_success_timestamp_seconds',
      'When the last anti-entropy round with the peer succeeded (Unix seconds).',
    ),
    peerRounds: registry.counter(
      'e2ekv_peer_anti_entropy_rounds_total',
      'Anti-entropy rounds with each peer by outcome: full, vaults (a sync of some vaults), failed.',
    ),
    peerMissing: registry.gauge(
      'e2ekv_peer_missing_entries',
      'Entries the peer held that this replica lacked at the start of the last full round (replication lag in entries).',
    ),
    peerEntries: registry.counter(
      'e2ekv_peer_entries_total',
      'Log entries replicated with each peer, by direction (sent, received).',
    ),
    peerBytes: registry.counter(
      'e2ekv_peer_bytes_total',
      'Bytes of peer request and answer bodies, by peer and direction (sent, received).',
    ),
    peerPushes: registry.counter(
      'e2ekv_peer_pushes_total',
      'Appends pushed to each peer by outcome: ok, skipped (the peer syncs instead), failed, dropped (queue full).',
    ),
    peerPushSeconds: registry.histogram(
      'e2ekv_peer_push_seconds',
      'From accepting a device append to the peer acknowledging it (replication lag of pushes).',
      [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    ),
    peerPushQueueBytes: registry.gauge(
      'e2ekv_peer_push_queue_bytes',
      'Bytes of appends waiting to be pushed to the peer.',
    ),
    peerRefused: registry.counter(
      'e2ekv_peer_refused_total',
      'Data from a peer that this replica refused (failed verification, or could not take), by error code.',
    ),
    eventStreams: registry.gauge('e2ekv_event_streams', 'Open push (server-sent events) streams.'),
  };
}
export type ServerMetrics = ReturnType<typeof serverMetrics>;
