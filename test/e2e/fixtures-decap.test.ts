/**
 * Scenario table (suricata-verify style): every capture in ../shared/fixtures/pcap run through
 * `mirrorguard decap`, with the sessions and counts SOURCES.md states for it. Non-4789 tunnels (VXLAN-GPE,
 * Linux's 8472, GRE/ERSPAN) must be counted as dropped, never crash, never written. GENEVE (6081) is
 * decoded: VXLAN inside it (a Gateway Load Balancer delivering mirror traffic) is a session keyed by the
 * inner packet's source; GENEVE wrapping Ethernet or IP directly is not mirror traffic and is counted as
 * decode.geneve.not_mirror (docs/decoding.md, GENEVE).
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { listPcaps } from '../../src/collector/recovery.js';
import { describeWithFixtures, fixture } from '../helpers/fixtures.js';
import { checkIfHave } from '../helpers/needs.js';
import { tsharkReadsCleanly } from '../helpers/oracles.js';
import { expectReadable, readBack } from '../helpers/read-back.js';
import { runCli } from '../helpers/serve.js';
import { useTmpDir } from '../helpers/tmp.js';

interface Expect {
  /** `VNI@source` -> packets written. */
  sessions: Record<string, number>;
  /** Counters that must have exactly these values (others may be anything, drops must add up). */
  counters?: Record<string, number>;
  args?: string[];
}

// Facts from ../shared/fixtures/SOURCES.md (tshark counts), with the outer sources read from the files.
const SCENARIOS: Record<string, Expect> = {
  'suricata-verify-vxlan-decoder-03-aws-traffic-mirror.pcap': { sessions: { '5569041@172.31.0.238': 100 }, counters: { written: 100 } },
  'zeek-vxlan.pcap': { sessions: { '123@192.168.56.11': 5, '123@192.168.56.12': 5 } },
  'zeek-vxlan-encapsulated-http.pcap': { sessions: { '1@10.1.200.131': 12 } },
  'zeek-vxlan-encapsulated-igmp-v2.pcap': { sessions: { '4242@172.30.0.1': 3 } },
  'zeek-vxlan-overlapping-http-get.pcap': { sessions: { '4242@127.0.0.1': 14, '4711@127.0.0.1': 14 }, counters: { written: 28, 'decode.outer.not_udp': 14 } },
  'zeek-vxlan-triple-v2.pcap': { sessions: { '1@1.1.1.1': 1 }, counters: { 'weird.vxlan.reserved_bits': 1 } },
  'zeek-vxlan-inner-tcp-bad-checksum.pcap': { sessions: { '42@192.168.1.1': 1 } },
  // GENEVE(6081) -> IPv4 127.0.0.1 -> UDP 4789 -> VXLAN 4242: the session is the inner packet's source.
  'zeek-geneve-vxlan-dns-truncated.pcap': {
    sessions: { '4242@127.0.0.1': 2 },
    counters: { written: 2, 'weird.inner.truncated': 2, 'weird.geneve.no_gwlb_options': 2 },
  },
  'suricata-verify-vxlan-decoder-01.pcap': { sessions: { '37@109.105.96.78': 1 }, counters: { written: 1, 'decode.outer.not_vxlan_port': 2 } },
  'suricata-verify-vxlan-decoder-02-tcpdump-vxlan.pcap': { sessions: { '100@192.168.202.1': 5, '100@192.168.203.1': 5 } },
  'suricata-verify-vxlan-arp.pcap': { sessions: { '100@192.168.202.1': 1, '100@192.168.203.1': 1 } },
  'suricata-verify-vxlan-non-zero-reserved-fields.pcap': { sessions: { '11@192.168.1.134': 10 }, counters: { 'weird.vxlan.reserved_bits': 10 } },
  'tcpdump-gso-ipv4-vxlan-ipv4.pcap': { sessions: { '5001@10.25.132.11': 1 } },
  'tcpdump-gso-ipv4-vxlan-ipv6.pcap': { sessions: { '5001@10.25.132.11': 1 } },
  'tcpdump-gso-ipv6-vxlan-ipv4.pcap': { sessions: { '5001@2604:1380:4091:ce00::b': 1 } },
  'tcpdump-gso-ipv6-vxlan-ipv6.pcap': { sessions: { '5001@2604:1380:4091:ce00::b': 1 } },
  // IPv4 total length 0 and UDP length 0 (BIG TCP): still VNI 5001, per tcpdump's own expected output.
  'tcpdump-bigtcp-ipv4-vxlan-ipv4.pcap': { sessions: { '5001@10.25.132.11': 1 } },
  'tcpdump-vxlan_port_8472.pcap': { sessions: {}, counters: { written: 0, 'decode.outer.not_vxlan_port': 10 } },
  'tcpdump-nsh-over-vxlan-gpe.pcap': { sessions: {}, counters: { written: 0, 'decode.outer.not_vxlan_port': 1 } },
  'arkime-gre-erspan-vxlan.pcap': { sessions: {}, counters: { written: 0, 'decode.outer.not_udp': 7 } },
  // GENEVE that wraps Ethernet or IP directly (no mirror VXLAN inside): decoded, counted, never stored.
  'zeek-geneve.pcap': { sessions: {}, counters: { written: 0, 'decode.geneve.not_mirror': 6 } },
  'zeek-geneve-ipv6.pcap': { sessions: {}, counters: { written: 0, 'decode.geneve.not_mirror': 2 } },
  'zeek-geneve-tagged-udp-packet.pcap': { sessions: {}, counters: { written: 0, 'decode.geneve.not_mirror': 4 } },
  // tshark marks the frame malformed: the inner Ethernet/IP is cut at 58 bytes.
  'zeek-geneve-truncated.pcapng': { sessions: {}, counters: { written: 0, 'decode.geneve.inner_truncated': 1 } },
  'suricata-verify-geneve-decoder.pcap': { sessions: {}, counters: { written: 0, 'decode.geneve.not_mirror': 10 } },
  'tcpdump-geneve-gcp.pcap': { sessions: {}, counters: { written: 0, 'decode.geneve.not_mirror': 1 } },
  // A real cloud GWLB (class 0x0167 options, not AWS's 0x0108) carrying IPv4 directly.
  'tx-gwlb-for-demo-tencent-gwlb-geneve.pcap': { sessions: {}, counters: { written: 0, 'decode.geneve.not_mirror': 18 } },
  // VNI 10 frames carry option class 0x0000 type 0x80: critical and unknown to us, so RFC 8926 3.5 drops them.
  'tcpdump-geneve.pcap': { sessions: {}, counters: { written: 0, 'decode.geneve.critical_option': 19, 'decode.geneve.not_mirror': 20 } },
  'tcpdump-gso-ipv4-geneve-ipv4.pcap': { sessions: {}, counters: { written: 0, 'decode.geneve.not_mirror': 1 } },
  'tcpdump-gso-ipv6-geneve-ipv6.pcap': { sessions: {}, counters: { written: 0, 'decode.geneve.not_mirror': 1 } },
  'zeek-geneve-47101.pcap': { sessions: {}, counters: { written: 0, 'decode.geneve.not_mirror': 24 } },
  'zeek-geneve-many-options.pcap': { sessions: {}, counters: { written: 0, 'decode.geneve.not_mirror': 10 } },
  // Protocol type 0x0806: ARP with no Ethernet header.
  'zeek-geneve-arp.pcap': { sessions: {}, counters: { written: 0, 'decode.geneve.protocol': 1 } },
  'zeek-geneve-inner-tcp-bad-checksum.pcap': { sessions: {}, counters: { written: 0, 'decode.geneve.not_mirror': 1 } },
  'opflex-geneve.pcap': { sessions: {}, counters: { written: 0, 'decode.geneve.not_mirror': 9 } },
};

describeWithFixtures('decap over every shared fixture capture', () => {
  const tmp = useTmpDir('mg-decap-');

  it('has a scenario for every capture in the fixtures folder', () => {
    const files = readdirSync(fixture('pcap')).filter((f) => /\.pcap(ng)?$/.test(f));
    expect(files.sort()).toEqual(Object.keys(SCENARIOS).sort());
  });

  for (const [file, exp] of Object.entries(SCENARIOS)) {
    it(file, () => {
      const out = tmp.path;
      const r = runCli(['decap', fixture('pcap', file), '--out', out, '--json', ...(exp.args ?? [])]);
      expect(r.status, r.stderr).toBe(0);
      const res = JSON.parse(r.stdout) as {
        inputs: { frames: number }[];
        sessions: { vni: number; sourceIp: string; packets: number; files: number }[];
        counters: Record<string, number>;
      };
      const sessions = Object.fromEntries(res.sessions.map((s) => [`${s.vni}@${s.sourceIp}`, s.packets]));
      expect(sessions).toEqual(exp.sessions);
      if (exp.counters) expect(res.counters).toMatchObject(exp.counters);
      // Every frame ended in exactly one outcome.
      const outcomes = Object.entries(res.counters)
        .filter(([k]) => !k.startsWith('weird.'))
        .reduce((a, [, v]) => a + v, 0);
      expect(outcomes).toBe(res.inputs[0]!.frames);
      // And every file we wrote reads cleanly (our reader; tshark too where installed), holding what the catalog says.
      const files = listPcaps(out);
      expect(files.length).toBe(res.sessions.reduce((a, s) => a + s.files, 0));
      const written = files.reduce((a, f) => {
        const own = readBack(join(out, f));
        expect(own.truncated, f).toBe(false);
        checkIfHave('tshark', () => expect(tsharkReadsCleanly(join(out, f))).toMatchObject({ ok: true, packets: own.frames.length }));
        return a + own.frames.length;
      }, 0);
      expect(written).toBe(res.counters.written);
    });
  }

  it('decodes Linux VXLAN on 8472 when told the port', () => {
    const out = tmp.path;
    const r = runCli(['decap', fixture('pcap', 'tcpdump-vxlan_port_8472.pcap'), '--out', out, '--json', '--vxlan-port', '8472']);
    expect(r.status, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout) as { sessions: { vni: number; packets: number }[] };
    expect(res.sessions.reduce((a, s) => a + s.packets, 0)).toBe(10);
    expect(new Set(res.sessions.map((s) => s.vni))).toEqual(new Set([100]));
  });

  it('with --geneve-port 0, GENEVE in captures is not decoded (the old behaviour)', () => {
    const out = tmp.path;
    const r = runCli(['decap', fixture('pcap', 'zeek-geneve-vxlan-dns-truncated.pcap'), '--out', out, '--json', '--geneve-port', '0']);
    expect(r.status, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout) as { sessions: unknown[]; counters: Record<string, number> };
    expect(res.sessions).toEqual([]);
    expect(res.counters['decode.outer.not_vxlan_port']).toBe(2);
  });

  it('writes the real AWS mirror capture as a file tshark reads, with the original timestamps', () => {
    const out = tmp.path;
    const r = runCli(['decap', fixture('pcap', 'suricata-verify-vxlan-decoder-03-aws-traffic-mirror.pcap'), '--out', out, '--json']);
    expect(r.status).toBe(0);
    const [hour] = readdirSync(join(out, 'pcap', '2019-06-27'));
    const dirs = join(out, 'pcap', '2019-06-27', hour!);
    const [name] = readdirSync(dirs);
    expect(name).toMatch(/^vni-5569041_172\.31\.0\.238_20190627T\d{6}\.\d{9}Z-w0-\d+\.pcap$/);
    expect(/_20190627T(\d\d)/.exec(name!)![1]).toBe(hour); // the folder is the first packet's hour
    expectReadable(join(dirs, name!), 100);
  });
});
