/**
 * `--source pcap:IFACE`: live capture through libpcap (the optional `cap` package) with the filter
 * `udp dst port <vxlanPort>`, for when another process owns UDP 4789 or the target should not bind it.
 * Frames arrive whole (outer Ethernet/IP/UDP included), so they go through the same outer decoder as
 * capture files, into one reused buffer; `cap` gives no packet timestamp, so this path uses receive time.
 * Needs CAP_NET_RAW (deploy/ has the systemd drop-in).
 */
import { createRequire } from 'node:module';
import type { FrameSink } from './sink.js';
import { MgError } from '../errors.js';
import { Timestamp } from '../util/clock.js';
import type { Logger } from '../util/log.js';

/** libpcap's link-type names, as `cap` reports them, to LINKTYPE_* numbers (tcpdump.org link-layer types). */
const LINKTYPES: Record<string, number> = { NULL: 0, ETHERNET: 1, RAW: 101, LINUX_SLL: 113, LOOP: 108, LINUX_SLL2: 276, IPV4: 228, IPV6: 229 };

/** The largest frame libpcap hands us; VXLAN on a 9001-byte jumbo MTU fits with room to spare. */
const SNAPLEN = 65_535;

interface CapModule {
  Cap: {
    deviceList(): { name: string }[];
  } & (new () => {
    open(device: string, filter: string, bufSize: number, buffer: Buffer): string;
    setMinBytes?(n: number): void;
    on(ev: 'packet', cb: (nbytes: number, truncated: boolean) => void): void;
    close(): void;
  });
}

export interface PcapReceiver {
  readonly kind: 'libpcap';
  readonly iface: string;
  readonly linktype: number;
  close(): Promise<void>;
}

function loadCap(): CapModule {
  try {
    return createRequire(import.meta.url)('cap') as CapModule;
  } catch (e) {
    throw new MgError(
      'MG_ERR_INGEST_LIBPCAP_UNAVAILABLE',
      `the 'cap' package is not installed or did not build (${(e as Error).message.split('\n')[0]}); install libpcap-dev and a C++ compiler, then run 'npm rebuild cap', or use the default UDP source`,
      { cause: e },
    );
  }
}

export function startPcapReceiver(collector: FrameSink, opts: { iface: string; vxlanPort: number; genevePort?: number; bufferBytes: number; logger: Logger }): PcapReceiver {
  const { Cap } = loadCap();
  // Check the name first: `cap` crashes the process at exit after a failed open, so never open blindly.
  const devices = Cap.deviceList().map((d) => d.name);
  if (!devices.includes(opts.iface)) {
    throw new MgError('MG_ERR_INGEST_LIBPCAP_UNAVAILABLE', `no interface '${opts.iface}' to capture on (libpcap sees: ${devices.join(', ') || 'none; needs root or CAP_NET_RAW'})`);
  }
  const cap = new Cap();
  const buf = Buffer.alloc(SNAPLEN);
  // GENEVE from a Gateway Load Balancer too (geneve.port, 6081; 0: off): the collector tells them apart.
  const filter = opts.genevePort ? `udp dst port ${opts.vxlanPort} or udp dst port ${opts.genevePort}` : `udp dst port ${opts.vxlanPort}`;
  let linkName: string;
  try {
    linkName = cap.open(opts.iface, filter, opts.bufferBytes, buf);
  } catch (e) {
    throw new MgError('MG_ERR_INGEST_LIBPCAP_UNAVAILABLE', `cannot capture on '${opts.iface}': ${(e as Error).message} (needs root or CAP_NET_RAW)`, { cause: e });
  }
  const linktype = LINKTYPES[linkName];
  if (linktype === undefined) {
    cap.close();
    throw new MgError('MG_ERR_CAPTURE_LINKTYPE', `interface '${opts.iface}' has link type ${linkName}`);
  }
  cap.setMinBytes?.(0); // deliver packets as they come, do not wait for a full kernel buffer
  const ts = new Timestamp();
  cap.on('packet', (nbytes: number) => {
    ts.now();
    collector.ingestFrame(buf, 0, nbytes, linktype, ts.sec, ts.nsec);
  });
  opts.logger.info({ receiver: 'libpcap', iface: opts.iface, filter, linktype: linkName }, 'receiving VXLAN');
  return {
    kind: 'libpcap',
    iface: opts.iface,
    linktype,
    close: async () => cap.close(),
  };
}
