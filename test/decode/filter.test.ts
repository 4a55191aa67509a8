import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileFilter, MAX_FILTER_DEPTH, MAX_FILTER_LENGTH } from '../../src/decode/filter.js';
import { decodeInnerFrame } from '../../src/decode/inner.js';
import { PacketState } from '../../src/decode/packet-state.js';
import { isMgError, type MgError } from '../../src/errors.js';
import { PROJECT_ROOT } from '../helpers/fixtures.js';
import { itNeeds } from '../helpers/needs.js';
import { arp, dnsQuery, ether, gre, icmp, icmp6Echo, ipv4, ipv6, raw, sctpInit, tcp, udp, vxlanHeader, type VlanTag } from '../helpers/packets.js';
import { buildPcap } from '../pcap/pcap-helpers.js';
import { makeTmpDir } from '../helpers/tmp.js';
import { embed } from './bytes.js';

function syntaxError(expr: string): MgError {
  try {
    compileFilter(expr);
  } catch (e) {
    if (isMgError(e)) return e;
    throw e;
  }
  throw new Error(`compiled: ${expr}`);
}

describe('compileFilter: parsing', () => {
  const printed: [string, string][] = [
    ['host 10.0.0.1', 'host 10.0.0.1'],
    ['HOST 2001:DB8:0:0::1', 'host 2001:db8::1'],
    ['src host 10.0.0.1', 'src host 10.0.0.1'],
    ['dst net 10.0.0.0/8', 'dst net 10.0.0.0/8'],
    ['net 2001:db8::/32', 'net 2001:db8::/32'],
    ['port 22', 'port 22'],
    ['tcp dst port 443', 'tcp dst port 443'],
    ['udp portrange 2000-1000', 'udp portrange 1000-2000'],
    ['proto 132', 'sctp'],
    ['proto gre', 'proto gre'],
    ['proto 99', 'proto 99'],
    ['ip proto 47', 'ip and proto gre'],
    ['ip6 src net fe80::/10', 'ip6 and src net fe80::/10'],
    ['icmp6 or arp or ip or ip6', 'icmp6 or arp or ip or ip6'],
    ['vlan', 'vlan'],
    ['vlan 100', 'vlan 100'],
    // precedence: not > and > or
    ['host 10.0.0.1 or port 22 and tcp', 'host 10.0.0.1 or (port 22 and tcp)'],
    ['tcp and port 22 or udp and port 53', '(tcp and port 22) or (udp and port 53)'],
    ['(host 10.0.0.1 or port 22) and tcp', '(host 10.0.0.1 or port 22) and tcp'],
    ['not tcp and udp', 'not tcp and udp'],
    ['not (tcp and udp)', 'not (tcp and udp)'],
    ['! tcp && (udp || icmp)', 'not tcp and (udp or icmp)'],
    ['!!tcp', 'not not tcp'],
    ['', ''],
    ['   ', ''],
  ];
  for (const [input, want] of printed) {
    it(`${JSON.stringify(input)} -> ${JSON.stringify(want)}`, () => {
      expect(compileFilter(input).toString()).toBe(want);
    });
  }

  const errors: [string, number, string][] = [
    ['host', 5, 'expected an IPv4 or IPv6 address, found the end of the filter'],
    ['host 10.0.0.256', 6, 'expected an IPv4 or IPv6 address, found "10.0.0.256"'],
    ['host 10.0.0.0/8', 6, 'use "net" for ADDR/PREFIX'],
    ['net 10.0.0.1/8', 5, 'without host bits set (10.0.0.0/8)'],
    ['net 10.0.0.0/33', 5, 'expected a network'],
    ['ip host ::1', 9, 'expected an IPv4 address'],
    ['ip6 net 10.0.0.0/8', 9, 'expected an IPv6 network'],
    ['port http', 6, 'expected a port number (0-65535), found "http"'],
    ['port 65536', 6, 'expected a port number'],
    ['portrange 10', 11, 'expected a port range LOW-HIGH'],
    ['tcp host 10.0.0.1', 5, 'expected "port" or "portrange", found "host"'],
    ['ip port 22', 4, 'expected "host" or "net", found "port"'],
    ['src', 4, 'found the end of the filter'],
    ['src proto 6', 5, 'expected "host", "net", "port" or "portrange", found "proto"'],
    ['tcp and', 8, 'expected a filter term'],
    ['tcp udp', 5, 'expected "and", "or" or the end of the filter, found "udp"'],
    ['(tcp', 5, 'expected "and", "or" or ")", found the end of the filter'],
    ['(tcp udp)', 6, 'expected "and", "or" or ")", found "udp"'],
    ['constructor', 1, 'expected a filter term'],
    ['proto __proto__', 7, 'expected a protocol'],
    ['tcp port toString', 10, 'expected a port number'],
    ['tcp)', 4, 'expected "and", "or" or the end of the filter, found ")"'],
    ['()', 2, 'expected a filter term'],
    ['tcp & udp', 5, 'expected "&&", found "&"'],
    ['host 10.0.0.1 $', 15, 'unexpected character "$"'],
    ['vlan 4096', 6, 'expected a VLAN ID (0-4095)'],
    ['proto 256', 7, 'expected a protocol'],
    ['proto', 6, 'expected a protocol'],
    ['ether host 1', 1, 'expected a filter term'],
  ];
  for (const [input, pos, text] of errors) {
    it(`rejects ${JSON.stringify(input)} at position ${pos}`, () => {
      const e = syntaxError(input);
      expect(e.code).toBe('MG_ERR_FILTER_SYNTAX');
      expect(e.message).toContain(`at position ${pos}: `);
      expect(e.message).toContain(text);
      expect(e.problems[0]).toEqual({ field: 'filter', message: expect.stringContaining(`position ${pos}`) });
    });
  }

  it('is a 400 over HTTP and a usage error (64) on the command line', () => {
    const e = syntaxError('port');
    expect(e.statusCode).toBe(400);
    expect(e.exitCode).toBe(64);
  });

  it(`accepts ${MAX_FILTER_LENGTH} characters and refuses one more`, () => {
    const base = 'tcp or '.repeat(100);
    const ok = base + 'udp'.padEnd(MAX_FILTER_LENGTH - base.length, ' ');
    expect(ok.length).toBe(MAX_FILTER_LENGTH);
    expect(compileFilter(ok).toString().startsWith('tcp or tcp')).toBe(true);
    const e = syntaxError(ok + ' ');
    expect(e.message).toContain(`at position ${MAX_FILTER_LENGTH + 1}`);
  });

  it(`accepts ${MAX_FILTER_DEPTH} levels of nesting and refuses one more`, () => {
    const nest = (n: number): string => '('.repeat(n) + 'tcp' + ')'.repeat(n);
    expect(compileFilter(nest(MAX_FILTER_DEPTH)).toString()).toBe('tcp');
    expect(syntaxError(nest(MAX_FILTER_DEPTH + 1)).message).toContain(`at position ${MAX_FILTER_DEPTH + 1}: nesting deeper`);
    expect(compileFilter('not '.repeat(MAX_FILTER_DEPTH) + 'tcp').toString()).toMatch(/^(not ){32}tcp$/);
    expect(syntaxError('! '.repeat(MAX_FILTER_DEPTH + 1) + 'tcp').message).toContain('nesting deeper');
  });

  it('compiles every example in docs/decoding.md', () => {
    const doc = readFileSync(join(PROJECT_ROOT, 'docs', 'decoding.md'), 'utf8');
    const block = doc.split('Examples:')[1]!.split('```')[1]!;
    const examples = block
      .split('\n')
      .map((l) => l.split(/\s{2,}/)[0]!.trim())
      .filter((l) => l.length > 0);
    expect(examples.length).toBeGreaterThanOrEqual(5);
    for (const ex of examples) expect(() => compileFilter(ex)).not.toThrow();
  });

  it('keeps a long or-chain flat (evaluated in a loop, not by recursion)', () => {
    const f = compileFilter(Array.from({ length: 90 }, (_, i) => `port ${i + 1}`).join(' or '));
    expect(f.toString().split(' or ').length).toBe(90);
    expect(f.toString()).not.toContain('(');
  });
});

// ------------------------------------------------------------------------------------------------

const E = (inner: Parameters<typeof ether>[1], vlans?: (number | VlanTag)[]) => ether({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02', vlans }, inner);

/** The frames the filter cases below match, by name; the first UNTAGGED are also given to tcpdump. */
function buildFrames(): [string, Buffer][] {
  return [
    ['tcp4', E(ipv4({ src: '10.0.0.1', dst: '10.0.0.2' }, tcp({ sport: 51000, dport: 22 }, Buffer.from('ssh'.repeat(10)))))],
    ['dns4', E(ipv4({ src: '10.0.0.2', dst: '10.0.0.1' }, udp({ sport: 53, dport: 40000 }, dnsQuery('example.com'))))],
    ['tcp6', E(ipv6({ src: '2001:db8::1', dst: '2001:db8:1::2' }, tcp({ sport: 443, dport: 50000 })))],
    ['icmp4', E(ipv4({ src: '192.168.1.5', dst: '8.8.8.8' }, icmp({ type: 8 }, raw('x', 32))))],
    ['icmp6', E(ipv6({ src: 'fe80::1', dst: 'ff02::1' }, icmp6Echo()))],
    ['arp', E(arp({ psrc: '10.0.0.1', pdst: '10.0.0.2' }))],
    ['frag4', E(ipv4({ src: '10.0.0.1', dst: '10.0.0.2', frag: 100, proto: 17 }, raw('f', 40)))],
    ['trunc4', E(ipv4({ src: '10.0.0.1', dst: '10.0.0.3' }, tcp({ sport: 22, dport: 51001 }, raw('z', 1000)))).subarray(0, 60)],
    ['gre4', E(ipv4({ src: '10.0.0.1', dst: '10.0.0.2' }, gre(ipv4({ src: '10.5.5.5', dst: '10.6.6.6' }, icmp()))))],
    ['sctp4', E(ipv4({ src: '172.16.0.1', dst: '172.16.0.2' }, sctpInit({ sport: 2905, dport: 2906 })))],
    ['udp6hi', E(ipv6({ src: '2001:db8::99', dst: '2001:db8::1' }, udp({ sport: 33434, dport: 33435 })))],
    // Untagged above: tcpdump (libpcap BPF) reads them the same way we do. Below: where we differ on purpose.
    ['vlan6', E(ipv6({ src: '2001:db8::1', dst: '2001:db8:1::2' }, tcp({ sport: 443, dport: 50001 })), [100])],
    ['qinq', E(ipv4({ src: '172.16.0.1', dst: '172.16.0.9' }, udp({ sport: 5000, dport: 5001 })), [{ vid: 10, tpid: 0x88a8 }, 20])],
    [
      'nested',
      E(ipv4({ src: '192.168.9.1', dst: '192.168.9.2' }, udp({ sport: 1234, dport: 4789 }, Buffer.concat([vxlanHeader(9), E(ipv4({ src: '10.7.7.7', dst: '10.8.8.8' }, tcp({ sport: 1234, dport: 80 })))])))),
    ],
  ];
}

describe('compileFilter: matching crafted frames', () => {
  let frames: [string, Buffer][] = [];
  let tmp: { dir: string; remove: () => void };
  let pcapFile = '';
  const UNTAGGED = 11;

  beforeAll(() => {
    tmp = makeTmpDir();
    pcapFile = join(tmp.dir, 'untagged.pcap');
    frames = buildFrames();
    // The timestamp (seconds) names the frame in tcpdump's output.
    writeFileSync(pcapFile, buildPcap(frames.slice(0, UNTAGGED).map(([, data], i) => ({ tsSec: i + 1, tsNsec: 0, data }))));
  });
  afterAll(() => tmp?.remove());

  /** Names of the frames the filter matches, each decoded inside junk at a non-zero offset. */
  function matching(expr: string, which = frames): string[] {
    const f = compileFilter(expr);
    return which.filter(([, b]) => {
      const e = embed(b, 61, 17);
      return f.matches(e.buf, e.off, e.end);
    }).map(([n]) => n);
  }

  const cases: [string, string[]][] = [
    ['', ['tcp4', 'dns4', 'tcp6', 'icmp4', 'icmp6', 'arp', 'frag4', 'trunc4', 'gre4', 'sctp4', 'udp6hi', 'vlan6', 'qinq', 'nested']],
    ['host 10.0.0.1', ['tcp4', 'dns4', 'arp', 'frag4', 'trunc4', 'gre4']],
    ['src host 10.0.0.1', ['tcp4', 'arp', 'frag4', 'trunc4', 'gre4']],
    ['dst host 10.0.0.1', ['dns4']],
    ['host 2001:db8:1::2', ['tcp6', 'vlan6']],
    ['net 10.0.0.0/30', ['tcp4', 'dns4', 'arp', 'frag4', 'trunc4', 'gre4']],
    ['dst net 2001:db8:1::/48', ['tcp6', 'vlan6']],
    ['net fe80::/10', ['icmp6']],
    ['port 22', ['tcp4', 'trunc4']],
    ['src port 22', ['trunc4']],
    ['tcp port 53 or udp port 53', ['dns4']],
    ['portrange 50000-50001', ['tcp6', 'vlan6']],
    ['udp portrange 33000-34000', ['udp6hi']],
    ['port 2906', ['sctp4']],
    ['tcp', ['tcp4', 'tcp6', 'trunc4', 'vlan6', 'nested']],
    ['udp', ['dns4', 'frag4', 'udp6hi', 'qinq']],
    ['icmp', ['icmp4']],
    ['icmp6', ['icmp6']],
    ['proto gre', ['gre4']],
    ['ip proto 47', ['gre4']],
    ['sctp', ['sctp4']],
    ['arp', ['arp']],
    ['ip6', ['tcp6', 'icmp6', 'udp6hi', 'vlan6']],
    ['ip and not tcp', ['dns4', 'icmp4', 'frag4', 'gre4', 'sctp4', 'qinq']],
    ['vlan', ['vlan6', 'qinq']],
    ['vlan 100', ['vlan6']],
    // any tag of the stack, not only the outermost as in BPF
    ['vlan 20', ['qinq']],
    // the innermost packet of nested VXLAN
    ['host 10.7.7.7 and dst port 80', ['nested']],
    ['host 192.168.9.1', []],
    // precedence: and binds tighter than or
    ['icmp or tcp and port 22', ['tcp4', 'icmp4', 'trunc4']],
    ['(icmp or tcp) and port 22', ['tcp4', 'trunc4']],
    ['not ip and not ip6', ['arp']],
    ['! (tcp || udp || arp) && ip', ['icmp4', 'gre4', 'sctp4']],
  ];
  for (const [expr, want] of cases) {
    it(`${JSON.stringify(expr)} matches ${want.length} frames`, () => {
      expect(matching(expr)).toEqual(want);
    });
  }

  itNeeds(['tcpdump'], 'matches what tcpdump (libpcap BPF) matches on untagged, non-nested frames', () => {
    const exprs = [
      'host 10.0.0.1',
      'src host 10.0.0.1',
      'dst host 2001:db8:1::2',
      'net 10.0.0.0/30',
      'net 2001:db8::/32',
      'port 22',
      'dst port 40000',
      'udp port 53',
      'portrange 50000-50001',
      'tcp',
      'udp',
      'icmp',
      'icmp6',
      'ip6',
      'arp',
      'sctp',
      'proto 47',
      'ip and not tcp',
      '(icmp or tcp) and port 22',
      'not (tcp or udp)',
      'port 2906',
    ];
    const untagged = frames.slice(0, UNTAGGED);
    for (const expr of exprs) {
      const r = spawnSync('tcpdump', ['-r', pcapFile, '-n', '-tt', expr], { encoding: 'utf8' });
      expect([expr, r.status]).toEqual([expr, 0]);
      const numbers = [...r.stdout.matchAll(/^(\d+)\.\d+ /gm)].map((m) => Number(m[1]));
      const theirs = numbers.map((n) => untagged[n - 1]![0]);
      expect([expr, matching(expr, untagged)]).toEqual([expr, theirs]);
    }
  });

  it('matchesDecoded tests a frame someone else already decoded', () => {
    const f = compileFilter('tcp and dst port 22');
    const [, b] = frames[0]!;
    const st = new PacketState();
    st.reset();
    decodeInnerFrame(b, 0, b.length, st);
    expect(f.matchesDecoded(st, b)).toBe(true);
    expect(compileFilter('udp').matchesDecoded(st, b)).toBe(false);
  });

  it('never matches a frame too short to decode, whatever the filter', () => {
    const short = Buffer.alloc(10);
    expect(compileFilter('').matches(short, 0, 10)).toBe(false);
    expect(compileFilter('not tcp').matches(short, 0, 10)).toBe(false);
  });

  it('reuses its state: matching one frame leaves nothing for the next', () => {
    const f = compileFilter('port 22');
    const tcp4 = frames.find(([n]) => n === 'tcp4')![1];
    const arp = frames.find(([n]) => n === 'arp')![1];
    expect(f.matches(tcp4, 0, tcp4.length)).toBe(true);
    expect(f.matches(arp, 0, arp.length)).toBe(false);
    expect(f.matches(tcp4, 0, tcp4.length)).toBe(true);
  });
});
