/**
 * Send VXLAN datagrams to a collector on loopback, as AWS Traffic Mirroring would, with nothing but
 * node:dgram. The outer source IP is the mirror session's identity, so each spec names one: a plain UDP
 * socket may bind any address of 127.0.0.0/8 (it is all on `lo`), so tests use sources such as
 * 127.31.0.238 and the collector sees exactly that. Outer IPv6 sources can only be ::1 on loopback.
 * The kernel computes the outer UDP checksum; the collector does not look at it.
 */
import { spawnSync } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { PYTHON, requireOracle } from './oracles.js';
import { ipv4, vxlanHeader } from './packets.js';

export interface VxlanSpec {
  /** Outer source address: any 127.x.y.z (or ::1). */
  src: string;
  vni?: number;
  /** Outer UDP source port; 0 (the default) lets the kernel pick one. */
  sport?: number;
  /** The inner Ethernet frame (test/helpers/packets.ts builds them). */
  inner?: Uint8Array;
  /** Keep only the first N inner bytes, as a mirror session's PacketLength does. */
  truncate?: number;
  /** A raw VXLAN header instead of one built from `flags` and `vni`. */
  vxlan?: Uint8Array;
  /** VXLAN flags byte; 0x08 (the I flag) by default. */
  flags?: number;
  /** How many times to send this datagram. */
  count?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Without a pause the sender outruns a busy receiver on a 2-core machine and the kernel drops datagrams
 * at the receive buffer, which tests that count every datagram cannot tolerate. A short pause after
 * every BURST datagrams keeps well under that.
 */
const BURST = 32;

function innerOf(p: VxlanSpec): Buffer {
  const inner = Buffer.from(p.inner ?? Buffer.alloc(0));
  return p.truncate === undefined ? inner : inner.subarray(0, p.truncate);
}

function payloadOf(p: VxlanSpec, inner: Buffer): Buffer {
  return Buffer.concat([p.vxlan ?? vxlanHeader(p.vni ?? 0, p.flags ?? 0x08), inner]);
}

/**
 * Send every spec in order (`count` expanded) to `port`; returns the inner frames sent, in hex, in order.
 * `interMs` waits between datagrams (for tests that need traffic spread over time).
 */
export async function sendVxlan(port: number, packets: VxlanSpec[], opts: { dst?: string; interMs?: number } = {}): Promise<string[]> {
  const dst = opts.dst ?? '127.0.0.1';
  const sockets = new Map<string, Socket>();
  const sent: string[] = [];
  try {
    let n = 0;
    for (const p of packets) {
      const key = `${p.src}|${p.sport ?? 0}`;
      let s = sockets.get(key);
      if (!s) {
        s = createSocket(isIPv6(p.src) ? 'udp6' : 'udp4');
        const sock = s;
        await new Promise<void>((resolve, reject) => {
          sock.once('error', reject);
          sock.bind({ address: p.src, port: p.sport ?? 0 }, () => {
            sock.off('error', reject);
            resolve();
          });
        });
        sockets.set(key, s);
      }
      const inner = innerOf(p);
      const datagram = payloadOf(p, inner);
      for (let i = 0; i < (p.count ?? 1); i++) {
        const sock = s;
        await new Promise<void>((resolve, reject) => sock.send(datagram, port, dst, (err) => (err ? reject(err) : resolve())));
        sent.push(inner.toString('hex'));
        if (opts.interMs) await sleep(opts.interMs);
        else if (++n % BURST === 0) await sleep(1);
      }
    }
  } finally {
    await Promise.all([...sockets.values()].map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
  return sent;
}

/** Writes each hex line from stdin, a whole IPv4 packet, to a raw socket (IPPROTO_RAW implies IP_HDRINCL). */
const RAW_SEND = String.raw`
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for line in sys.stdin:
    pkt = bytes.fromhex(line.strip())
    s.sendto(pkt, (socket.inet_ntoa(pkt[16:20]), 0))
`;

/**
 * For the few tests that need an outer source outside 127.0.0.0/8 (an AWS address such as 172.31.0.238,
 * above 2^31 as an unsigned number): the whole outer IPv4 packet is built here and written to a raw
 * socket by a few lines of Python, which Node cannot do. Needs `python3` and `root`; declare both.
 * The outer UDP checksum is 0, as AWS sends it. IPv4 only.
 */
export function sendVxlanRaw(port: number, packets: VxlanSpec[], opts: { dst?: string } = {}): string[] {
  requireOracle('root');
  requireOracle('python3');
  const sent: string[] = [];
  const lines: string[] = [];
  for (const p of packets) {
    const inner = innerOf(p);
    const payload = payloadOf(p, inner);
    const udpSeg = Buffer.alloc(8);
    udpSeg.writeUInt16BE(p.sport ?? 49152, 0);
    udpSeg.writeUInt16BE(port, 2);
    udpSeg.writeUInt16BE(8 + payload.length, 4);
    const pkt = ipv4({ src: p.src, dst: opts.dst ?? '127.0.0.1', proto: 17 }, Buffer.concat([udpSeg, payload])).bytes;
    for (let i = 0; i < (p.count ?? 1); i++) {
      lines.push(pkt.toString('hex'));
      sent.push(inner.toString('hex'));
    }
  }
  const r = spawnSync(PYTHON, ['-c', RAW_SEND], { input: `${lines.join('\n')}\n`, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`raw send failed: ${r.stderr}`);
  return sent;
}
