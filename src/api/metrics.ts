/**
 * Prometheus metrics (prom-client), one Registry per app so that two apps in one process (tests) do not
 * share state. Nothing is updated on the packet path: every metric reads its live source when scraped
 * (the collector's counters, the kernel drop counter, the catalog, the findings and outbox tables). The
 * only metric the API updates itself is its own request count.
 *
 * Names: `mirrorguard_` then what is counted; counters end in `_total`. Counter names from
 * docs/counters.md appear as label values (`reason="decode.vxlan.no_i_flag"`), so the two stay one
 * vocabulary. docs/api.md lists every metric.
 */
import { statfs } from 'node:fs/promises';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { DROP_NAMES, WEIRD_NAMES } from '../outcomes.js';
import { outboxCounts, type OutboxCounts } from '../alert/outbox.js';
import { VERSION } from '../version.js';
import type { ApiContext } from './deps.js';

/** VNIs labelled one by one; the rest add up under vni="other" (forged VNIs must not explode the series count). */
export const MAX_VNI_SERIES = 1000;

const DROP_SET = new Set(DROP_NAMES.filter((n) => n !== 'written'));
const WEIRD_SET = new Set(WEIRD_NAMES);

export interface ApiMetrics {
  registry: Registry;
  /** Read every live source once, then render the Prometheus text. */
  scrape(): Promise<string>;
  /** Count one answered request (onResponse hook). */
  observeRequest(method: string, route: string, status: number): void;
}

export function createMetrics(ctx: ApiContext): ApiMetrics {
  const registry = new Registry();
  const registers = [registry];
  const store = ctx.deps.store;
  collectDefaultMetrics({ register: registry, prefix: 'mirrorguard_' });

  // One reading of each source per scrape, taken in scrape() before the collectors run, so the
  // metrics that share a source agree with each other.
  interface Snapshot {
    counters: Record<string, number>;
    vni: { vni: number; packets: number; bytes: number }[];
    files: { state: string; n: number; bytes: number }[];
    findings: Awaited<ReturnType<typeof ctx.deps.findings.counts>>;
    deliveries: OutboxCounts;
  }
  let snap: Snapshot = { counters: {}, vni: [], files: [], findings: [], deliveries: { pending: 0, delivered: 0, failed: 0, byEndpoint: {} } };
  const takeSnapshot = async (): Promise<Snapshot> => ({
    counters: ctx.deps.counters(),
    vni: await store.observed.byVni(),
    files: await store.captures.byState(),
    findings: await ctx.deps.findings.counts(),
    deliveries: await outboxCounts(store.outbox),
  });

  new Gauge({
    name: 'mirrorguard_build_info',
    help: 'Always 1; the version label says which mirrorguard is running.',
    labelNames: ['version'],
    registers,
    collect() {
      this.set({ version: VERSION }, 1);
    },
  });

  // --- packets ---------------------------------------------------------------------------------------
  new Counter({
    name: 'mirrorguard_frames_written_total',
    help: 'Inner frames decapsulated and appended to a PCAP file (counter "written").',
    registers,
    collect() {
      this.reset();
      this.inc(snap.counters['written'] ?? 0);
    },
  });
  new Counter({
    name: 'mirrorguard_dropped_packets_total',
    help: 'Datagrams or frames dropped, by reason (docs/counters.md "Packet outcomes").',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      for (const [k, v] of Object.entries(snap.counters)) if (DROP_SET.has(k)) this.inc({ reason: k }, v);
    },
  });
  new Counter({
    name: 'mirrorguard_weird_packets_total',
    help: 'Frames stored but odd, by reason (docs/counters.md "Weird").',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      for (const [k, v] of Object.entries(snap.counters)) if (WEIRD_SET.has(k)) this.inc({ reason: k }, v);
    },
  });
  new Counter({
    name: 'mirrorguard_events_total',
    help: 'Every other counter of docs/counters.md (detect.*, alert.*, ingest.*), by name.',
    labelNames: ['counter'],
    registers,
    collect() {
      this.reset();
      for (const [k, v] of Object.entries(snap.counters)) if (k !== 'written' && !DROP_SET.has(k) && !WEIRD_SET.has(k) && v >= 0) this.inc({ counter: k }, v);
    },
  });

  const emitPerVni = (m: Counter<'vni'>, field: 'packets' | 'bytes') => {
    m.reset();
    let other = 0;
    snap.vni.forEach((r, i) => {
      if (i < MAX_VNI_SERIES) m.inc({ vni: String(r.vni) }, r[field]);
      else other += r[field];
    });
    if (other > 0) m.inc({ vni: 'other' }, other);
  };
  new Counter({
    name: 'mirrorguard_vni_packets_total',
    help: `Mirrored packets per VNI, all sources (observed_sessions, synced every flush interval); beyond ${MAX_VNI_SERIES} VNIs the rest are vni="other".`,
    labelNames: ['vni'],
    registers,
    collect() {
      emitPerVni(this, 'packets');
    },
  });
  new Counter({
    name: 'mirrorguard_vni_bytes_total',
    help: 'Inner frame bytes per VNI, all sources.',
    labelNames: ['vni'],
    registers,
    collect() {
      emitPerVni(this, 'bytes');
    },
  });
  new Gauge({
    name: 'mirrorguard_sessions_live',
    help: '(source IP, VNI) pairs the collector holds in memory.',
    registers,
    collect() {
      let n = 0;
      for (const _ of ctx.deps.sessionsLive()) n++;
      this.set(n);
    },
  });

  // --- kernel ---------------------------------------------------------------------------------------
  new Counter({
    name: 'mirrorguard_kernel_udp_drops_total',
    help: 'Datagrams the kernel dropped because the receive buffer was full (/proc/net/udp "drops"); raise recvBufferBytes.',
    registers,
    collect() {
      this.reset();
      const k = ctx.deps.kernelStats();
      if (k) this.inc(k.drops);
    },
  });
  new Gauge({
    name: 'mirrorguard_kernel_udp_rx_queue_bytes',
    help: 'Bytes waiting in the receive socket buffers.',
    registers,
    collect() {
      const k = ctx.deps.kernelStats();
      this.set(k ? k.rxQueueBytes : 0);
    },
  });

  // --- files and disk -------------------------------------------------------------------------------
  new Gauge({
    name: 'mirrorguard_capture_files',
    help: 'PCAP files in the catalog, by state (open: being written).',
    labelNames: ['state'],
    registers,
    collect() {
      this.reset();
      this.set({ state: 'open' }, 0);
      this.set({ state: 'closed' }, 0);
      for (const r of snap.files) this.set({ state: r.state }, r.n);
    },
  });
  new Gauge({
    name: 'mirrorguard_capture_bytes',
    help: 'Bytes of PCAP files in the catalog, by state (the disk use retention bounds).',
    labelNames: ['state'],
    registers,
    collect() {
      this.reset();
      this.set({ state: 'open' }, 0);
      this.set({ state: 'closed' }, 0);
      for (const r of snap.files) this.set({ state: r.state }, r.bytes);
    },
  });
  new Gauge({
    name: 'mirrorguard_data_dir_free_bytes',
    help: 'Free bytes on the file system of the data directory (available to mirrorguard).',
    registers,
    async collect() {
      const s = await statfs(ctx.deps.dataDir).catch(() => null);
      if (s) this.set(s.bavail * s.bsize);
    },
  });

  // --- findings and alerts --------------------------------------------------------------------------
  new Gauge({
    name: 'mirrorguard_findings',
    help: 'Findings (incidents) by kind, severity and status.',
    labelNames: ['kind', 'severity', 'status'],
    registers,
    collect() {
      this.reset();
      for (const c of snap.findings) this.set({ kind: c.kind, severity: c.severity, status: c.status }, c.findings);
    },
  });
  new Gauge({
    name: 'mirrorguard_finding_occurrences',
    help: 'Occurrences of findings (sum of their counts) by kind, severity and status.',
    labelNames: ['kind', 'severity', 'status'],
    registers,
    collect() {
      this.reset();
      for (const c of snap.findings) this.set({ kind: c.kind, severity: c.severity, status: c.status }, c.occurrences);
    },
  });
  new Gauge({
    name: 'mirrorguard_alert_deliveries',
    help: 'Webhook deliveries in the outbox by endpoint and state (pending, delivered, failed).',
    labelNames: ['endpoint', 'state'],
    registers,
    collect() {
      this.reset();
      for (const [endpoint, c] of Object.entries(snap.deliveries.byEndpoint)) {
        for (const state of ['pending', 'delivered', 'failed'] as const) this.set({ endpoint, state }, c[state]);
      }
    },
  });

  // --- the API itself -------------------------------------------------------------------------------
  new Gauge({
    name: 'mirrorguard_api_extractions_active',
    help: 'PCAP extractions streaming now.',
    registers,
    collect() {
      this.set(ctx.extractions.active);
    },
  });
  new Counter({
    name: 'mirrorguard_api_extractions_total',
    help: 'PCAP extractions started, and refused because api.maxConcurrentExtractions were running.',
    labelNames: ['outcome'],
    registers,
    collect() {
      this.reset();
      this.inc({ outcome: 'started' }, ctx.extractions.total);
      this.inc({ outcome: 'refused_busy' }, ctx.extractions.refused);
    },
  });
  const requests = new Counter({
    name: 'mirrorguard_api_requests_total',
    help: 'API requests answered, by method, route pattern and status.',
    labelNames: ['method', 'route', 'status'],
    registers,
  });

  return {
    registry,
    async scrape() {
      snap = await takeSnapshot();
      return registry.metrics();
    },
    observeRequest(method, route, status) {
      requests.inc({ method, route, status: String(status) });
    },
  };
}
