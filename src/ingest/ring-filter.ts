/**
 * The classic BPF program the capture ring attaches (SO_ATTACH_FILTER, src/ingest/ring.ts): the kernel runs
 * it on every frame of the interface before anything is copied into the ring, so only our traffic costs
 * ring space and CPU. It keeps, on an Ethernet link (lo is one too):
 *
 *   - frames addressed to this host (packet type PACKET_HOST, an ancillary load: not our transmissions,
 *     not broadcast, not another host's frames seen in promiscuous mode),
 *   - IPv4 (EtherType 0x0800) carrying UDP (protocol 17),
 *   - to one of the targets: destination UDP port and, unless the target listens on every address,
 *     destination IPv4 address; for VXLAN and, with `geneve.listen`, GENEVE;
 *   - and IPv4 fragments (More Fragments set or a fragment offset, RFC 791 section 3.1) of UDP to a
 *     target's address, whatever the port: a later fragment has no UDP header to match, and the receiver
 *     counts fragments (ingest.ring.fragments) instead of letting them vanish.
 *
 * For unfragmented frames this is exactly what tcpdump's `udp dst port P and dst host H` accepts
 * (test/ingest/ring-filter.test.ts runs both programs on the same frames); tcpdump also accepts a first
 * fragment to port P and drops later fragments, where we keep every fragment so it is counted.
 *
 * Instructions are [code, jt, jf, k] (linux/filter.h struct sock_filter); jumps are relative to the next one.
 */

export type BpfInsn = [code: number, jt: number, jf: number, k: number];

/** One thing the ring keeps: UDP to `port` at `host` (an IPv4 address as a 32-bit number, host order), or at any address (null). */
export interface RingTarget {
  host: number | null;
  port: number;
}

// Opcodes (linux/bpf_common.h): class | size | mode, or class | op | source.
const LD_W_ABS = 0x20;
const LD_H_ABS = 0x28;
const LD_B_ABS = 0x30;
const LD_H_IND = 0x48;
const LDX_B_MSH = 0xb1;
const JEQ_K = 0x15;
const JSET_K = 0x45;
const RET_K = 0x06;
/** SKF_AD_OFF + SKF_AD_PKTTYPE: loads skb->pkt_type. */
export const AD_PKTTYPE = (0xfffff000 + 4) >>> 0;
/** PACKET_HOST (linux/if_packet.h). */
export const PACKET_HOST = 0;
/** What an accepted frame keeps: all of it (the ring's blocks bound it further). */
export const SNAP_BYTES = 262_144;

/** Ethernet (14) + IPv4 offsets. */
const ETH_TYPE = 12;
const IP_PROTO = 14 + 9;
const IP_FRAG = 14 + 6;
const IP_DST = 14 + 16;
const IP_HDR = 14;
/** Destination port, from the start of the IP header plus its length (X after ldxb msh). */
const UDP_DPORT = 14 + 2;

type Item = { code: number; jt: string | number; jf: string | number; k: number } | { label: string };

export function ringFilter(targets: readonly RingTarget[]): BpfInsn[] {
  if (targets.length === 0) throw new Error('ringFilter: no targets');
  const items: Item[] = [];
  const op = (code: number, k: number, jt: string | number = 0, jf: string | number = 0) => items.push({ code, jt, jf, k: k >>> 0 });
  const label = (l: string) => items.push({ label: l });

  op(LD_B_ABS, AD_PKTTYPE);
  op(JEQ_K, PACKET_HOST, 0, 'reject');
  op(LD_H_ABS, ETH_TYPE);
  op(JEQ_K, 0x0800, 0, 'reject');
  op(LD_B_ABS, IP_PROTO);
  op(JEQ_K, 17, 0, 'reject');
  op(LD_H_ABS, IP_FRAG);
  op(JSET_K, 0x3fff, 'fragment', 0);
  op(LDX_B_MSH, IP_HDR);
  targets.forEach((t, i) => {
    const next = `target${i + 1}`;
    op(LD_H_IND, UDP_DPORT);
    if (t.host === null) op(JEQ_K, t.port, 'accept', next);
    else {
      op(JEQ_K, t.port, 0, next);
      op(LD_W_ABS, IP_DST);
      op(JEQ_K, t.host, 'accept', next);
    }
    label(next);
  });
  op(RET_K, 0);
  label('fragment');
  const hosts = [...new Set(targets.map((t) => t.host))];
  if (hosts.includes(null)) op(RET_K, SNAP_BYTES);
  else {
    op(LD_W_ABS, IP_DST);
    for (const h of hosts) op(JEQ_K, h!, 'accept', 0);
  }
  label('reject');
  op(RET_K, 0);
  label('accept');
  op(RET_K, SNAP_BYTES);

  // Resolve labels to relative jumps (cBPF jumps only forward, at most 255 instructions).
  const at = new Map<string, number>();
  let n = 0;
  for (const it of items) {
    if ('label' in it) at.set(it.label, n);
    else n++;
  }
  const out: BpfInsn[] = [];
  for (const it of items) {
    if ('label' in it) continue;
    const here = out.length;
    const rel = (j: string | number) => {
      if (typeof j === 'number') return j;
      const d = at.get(j)! - here - 1;
      if (d < 0 || d > 255) throw new Error(`ringFilter: jump to ${j} out of range`);
      return d;
    };
    out.push([it.code, rel(it.jt), rel(it.jf), it.k]);
  }
  return out;
}

/** An IPv4 dotted quad as a 32-bit number in host order (a.b.c.d = a<<24 | ...), as the filter loads it. */
export function ipv4Number(addr: string): number {
  const p = addr.split('.').map(Number);
  return (((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0);
}
