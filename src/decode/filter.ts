/**
 * A small capture-filter language, BPF-like, for auditors extracting packets from stored PCAPs. A filter
 * is compiled once (parsing allocates, errors are MG_ERR_FILTER_SYNTAX with the position) and then run
 * over stored inner Ethernet frames: each match decodes the frame into the filter's own reused
 * PacketState and walks the compiled tree, allocating nothing.
 *
 * Grammar (keywords are case-insensitive; docs/decoding.md has examples):
 *
 *   filter    := <empty> | or
 *   or        := and { ("or" | "||") and }
 *   and       := unary { ("and" | "&&") unary }
 *   unary     := ("not" | "!") unary | "(" or ")" | term
 *   term      := [dir] "host" ADDR | [dir] "net" CIDR
 *              | [l4] [dir] "port" N | [l4] [dir] "portrange" N-M
 *              | "proto" PROTO | ("ip" | "ip6") [ [dir] ("host" | "net") ... | "proto" PROTO ]
 *              | "tcp" | "udp" | "sctp" | "icmp" | "icmp6" | "ip" | "ip6" | "arp" | "vlan" [N]
 *   dir       := "src" | "dst"
 *   l4        := "tcp" | "udp" | "sctp"
 *   PROTO     := a number 0-255 or tcp, udp, icmp, icmp6, sctp, igmp, gre, esp, ah
 *
 * Precedence: not binds tighter than and, which binds tighter than or (C-style), so `a or b and c` is
 * `a or (b and c)`. BPF gives and/or equal precedence, left to right, which would read it as
 * `(a or b) and c`; we chose the conventional order because auditors expect it, and the compiled
 * filter's toString() shows the grouping it used.
 *
 * Filters see the innermost decoded packet: for VXLAN nested inside the mirrored frame, host/port/vlan
 * describe the packet inside the inner tunnel.
 */
import { MgError } from '../errors.js';
import {
  parseCidr,
  parseIp,
  cidrToString,
  ipv4InCidr,
  ipv4ToString,
  ipv6InCidr,
  ipv6ToString,
  type Cidr,
  type ParsedIp,
} from './addr.js';
import {
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  IPPROTO_AH,
  IPPROTO_ESP,
  IPPROTO_GRE,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_IGMP,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  IPPROTO_UDP,
} from './constants.js';
import { DROP } from '../outcomes.js';
import { decodeInnerFrame } from './inner.js';
import { AF_INET, AF_INET6, PacketState } from './packet-state.js';

/** Longest filter text accepted, in characters. */
export const MAX_FILTER_LENGTH = 1024;
/** Deepest nesting of parentheses and `not` accepted. */
export const MAX_FILTER_DEPTH = 32;

export interface PacketFilter {
  /** The text it was compiled from. */
  readonly expr: string;
  /** Decode the stored inner Ethernet frame buf[off..end) and test it. Never throws, never allocates. */
  matches(buf: Uint8Array, off: number, end: number): boolean;
  /** Test a frame already decoded into `st` (by decodeVxlan or decodeInnerFrame) from `buf`. */
  matchesDecoded(st: PacketState, buf: Uint8Array): boolean;
  /** The filter with its grouping made explicit, e.g. `host 10.0.0.1 or (port 22 and not tcp)`. */
  toString(): string;
}

const EITHER = 0;
const SRC = 1;
const DST = 2;
type Dir = typeof EITHER | typeof SRC | typeof DST;

type Node =
  | { kind: 'all' }
  | { kind: 'and' | 'or'; items: Node[] }
  | { kind: 'not'; item: Node }
  | { kind: 'host'; dir: Dir; ip: ParsedIp }
  | { kind: 'net'; dir: Dir; cidr: Cidr }
  /** proto -1: any of TCP, UDP, SCTP (as BPF's `port`). */
  | { kind: 'port'; dir: Dir; lo: number; hi: number; proto: number; range: boolean }
  | { kind: 'proto'; proto: number }
  | { kind: 'ethertype'; type: number }
  /** id -1: any tag. */
  | { kind: 'vlan'; id: number };

// Maps, not object literals: a filter word like "constructor" must not find Object.prototype.
const PROTO_NAMES: ReadonlyMap<string, number> = new Map([
  ['icmp', IPPROTO_ICMP],
  ['igmp', IPPROTO_IGMP],
  ['tcp', IPPROTO_TCP],
  ['udp', IPPROTO_UDP],
  ['gre', IPPROTO_GRE],
  ['esp', IPPROTO_ESP],
  ['ah', IPPROTO_AH],
  ['icmp6', IPPROTO_ICMPV6],
  ['sctp', IPPROTO_SCTP],
]);
const PORTED: ReadonlyMap<string, number> = new Map([
  ['tcp', IPPROTO_TCP],
  ['udp', IPPROTO_UDP],
  ['sctp', IPPROTO_SCTP],
]);

/** Words that continue a qualified term (`tcp port 22`, `ip src host ...`) rather than start a new one. */
const QUALIFIED = new Set(['src', 'dst', 'host', 'net', 'port', 'portrange']);

// ------------------------------------------------------------------------------------------------
// Tokens

interface Token {
  /** Original text. */
  text: string;
  /** Lowercased, for keyword comparison. */
  word: string;
  /** 1-based character position in the filter. */
  pos: number;
}

const WORD_CHAR = /[A-Za-z0-9_.:/-]/;

function syntaxError(pos: number, message: string): MgError {
  const detail = `at position ${pos}: ${message}`;
  return new MgError('MG_ERR_FILTER_SYNTAX', detail, { problems: [{ field: 'filter', message: detail }] });
}

function tokenize(expr: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < expr.length) {
    const c = expr[i];
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
      continue;
    }
    if (c === '(' || c === ')' || c === '!') {
      out.push({ text: c, word: c, pos: i + 1 });
      i++;
      continue;
    }
    if (c === '&' || c === '|') {
      if (expr[i + 1] !== c) throw syntaxError(i + 1, `expected "${c}${c}", found "${c}"`);
      out.push({ text: c + c, word: c + c, pos: i + 1 });
      i += 2;
      continue;
    }
    if (!WORD_CHAR.test(c)) throw syntaxError(i + 1, `unexpected character ${JSON.stringify(c)}`);
    const start = i;
    while (i < expr.length && WORD_CHAR.test(expr[i])) i++;
    const text = expr.slice(start, i);
    out.push({ text, word: text.toLowerCase(), pos: start + 1 });
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// Parser: recursive descent, one function per grammar rule.

class Parser {
  private i = 0;
  private depth = 0;

  constructor(
    private readonly toks: Token[],
    private readonly endPos: number,
  ) {}

  parse(): Node {
    if (this.toks.length === 0) return { kind: 'all' };
    const n = this.parseOr();
    const t = this.peek();
    if (t !== undefined) this.fail('"and", "or" or the end of the filter', t);
    return n;
  }

  private peek(offset = 0): Token | undefined {
    return this.toks[this.i + offset];
  }

  private next(expected: string): Token {
    const t = this.toks[this.i];
    if (t === undefined) this.fail(expected, undefined);
    this.i++;
    return t;
  }

  private fail(expected: string, t: Token | undefined): never {
    if (t === undefined) throw syntaxError(this.endPos, `expected ${expected}, found the end of the filter`);
    throw syntaxError(t.pos, `expected ${expected}, found ${JSON.stringify(t.text)}`);
  }

  private enter(t: Token): void {
    if (++this.depth > MAX_FILTER_DEPTH) {
      throw syntaxError(t.pos, `nesting deeper than ${MAX_FILTER_DEPTH} levels of parentheses and "not"`);
    }
  }

  private parseOr(): Node {
    const items = [this.parseAnd()];
    for (let t = this.peek(); t !== undefined && (t.word === 'or' || t.word === '||'); t = this.peek()) {
      this.i++;
      items.push(this.parseAnd());
    }
    return items.length === 1 ? items[0] : { kind: 'or', items };
  }

  private parseAnd(): Node {
    const items = [this.parseUnary()];
    for (let t = this.peek(); t !== undefined && (t.word === 'and' || t.word === '&&'); t = this.peek()) {
      this.i++;
      items.push(this.parseUnary());
    }
    return items.length === 1 ? items[0] : { kind: 'and', items };
  }

  private parseUnary(): Node {
    const t = this.peek();
    if (t !== undefined && (t.word === 'not' || t.word === '!')) {
      this.i++;
      this.enter(t);
      const item = this.parseUnary();
      this.depth--;
      return { kind: 'not', item };
    }
    if (t !== undefined && t.word === '(') {
      this.i++;
      this.enter(t);
      const n = this.parseOr();
      const close = this.peek();
      if (close === undefined || close.word !== ')') this.fail('"and", "or" or ")"', close);
      this.i++;
      this.depth--;
      return n;
    }
    return this.parseTerm();
  }

  private parseTerm(): Node {
    const t = this.next('a filter term (host, net, port, portrange, proto, tcp, udp, icmp, ip, ip6, arp, vlan, "(" or "not")');
    const w = t.word;
    if (w === 'src' || w === 'dst' || w === 'host' || w === 'net' || w === 'port' || w === 'portrange') {
      this.i--;
      return this.parseDirected(-1, 0);
    }
    const ported = PORTED.get(w);
    if (ported !== undefined) {
      const n = this.peek();
      if (n !== undefined && QUALIFIED.has(n.word)) return this.parseDirected(ported, 0);
      return { kind: 'proto', proto: ported };
    }
    if (w === 'icmp') return { kind: 'proto', proto: IPPROTO_ICMP };
    if (w === 'icmp6') return { kind: 'proto', proto: IPPROTO_ICMPV6 };
    if (w === 'ip' || w === 'ip6') {
      const family = w === 'ip' ? 4 : 6;
      const ether: Node = { kind: 'ethertype', type: w === 'ip' ? ETHERTYPE_IPV4 : ETHERTYPE_IPV6 };
      const n = this.peek();
      if (n !== undefined && QUALIFIED.has(n.word)) return { kind: 'and', items: [ether, this.parseDirected(-1, family)] };
      if (n !== undefined && n.word === 'proto') {
        this.i++;
        return { kind: 'and', items: [ether, this.parseProtoValue()] };
      }
      return ether;
    }
    if (w === 'arp') return { kind: 'ethertype', type: ETHERTYPE_ARP };
    if (w === 'proto') return this.parseProtoValue();
    if (w === 'vlan') {
      const n = this.peek();
      if (n !== undefined && /^[0-9]+$/.test(n.word)) {
        this.i++;
        const id = Number(n.word);
        if (n.word.length > 4 || id > 4095) this.fail('a VLAN ID (0-4095)', n);
        return { kind: 'vlan', id };
      }
      return { kind: 'vlan', id: -1 };
    }
    this.fail('a filter term (host, net, port, portrange, proto, tcp, udp, icmp, ip, ip6, arp, vlan, "(" or "not")', t);
  }

  /**
   * [dir] host|net|port|portrange VALUE. `proto` >= 0 after tcp/udp/sctp (only ports may follow);
   * `family` 4 or 6 after ip/ip6 (only host/net may follow, of that family).
   */
  private parseDirected(proto: number, family: number): Node {
    let t = this.next('"src", "dst", "host", "net", "port" or "portrange"');
    let dir: Dir = EITHER;
    if (t.word === 'src' || t.word === 'dst') {
      dir = t.word === 'src' ? SRC : DST;
      t = this.next('"host", "net", "port" or "portrange"');
    }
    const w = t.word;
    const portsOnly = proto >= 0;
    const addrsOnly = family !== 0;
    if (!portsOnly && (w === 'host' || w === 'net')) {
      const v = this.next(w === 'host' ? 'an IPv4 or IPv6 address' : 'a network (ADDR/PREFIX)');
      if (w === 'host') {
        const ip = parseIp(v.text);
        if (ip === null) {
          this.fail(v.text.includes('/') ? 'an address (use "net" for ADDR/PREFIX)' : 'an IPv4 or IPv6 address', v);
        }
        if (family !== 0 && ip.family !== family) this.fail(`an IPv${family} address`, v);
        return { kind: 'host', dir, ip };
      }
      const cidr = parseCidr(v.text);
      if (cidr === null) this.fail('a network (ADDR/PREFIX, e.g. 10.0.0.0/8 or 2001:db8::/32)', v);
      if (family !== 0 && cidr.family !== family) this.fail(`an IPv${family} network`, v);
      if (cidr.hostBitsSet) this.fail(`a network without host bits set (${cidrToString(cidr)})`, v);
      return { kind: 'net', dir, cidr };
    }
    if (!addrsOnly && w === 'port') {
      const v = this.next('a port number (0-65535)');
      const p = parsePort(v.text);
      if (p < 0) this.fail('a port number (0-65535)', v);
      return { kind: 'port', dir, lo: p, hi: p, proto, range: false };
    }
    if (!addrsOnly && w === 'portrange') {
      const v = this.next('a port range LOW-HIGH');
      const m = /^([0-9]+)-([0-9]+)$/.exec(v.text);
      const a = m === null ? -1 : parsePort(m[1]);
      const b = m === null ? -1 : parsePort(m[2]);
      if (a < 0 || b < 0) this.fail('a port range LOW-HIGH (0-65535)', v);
      // As in BPF, a reversed range is accepted and means the same range.
      return { kind: 'port', dir, lo: Math.min(a, b), hi: Math.max(a, b), proto, range: true };
    }
    this.fail(portsOnly ? '"port" or "portrange"' : addrsOnly ? '"host" or "net"' : '"host", "net", "port" or "portrange"', t);
  }

  private parseProtoValue(): Node {
    const v = this.next('a protocol (a number 0-255 or tcp, udp, icmp, icmp6, sctp, igmp, gre, esp, ah)');
    const named = PROTO_NAMES.get(v.word);
    if (named !== undefined) return { kind: 'proto', proto: named };
    if (/^[0-9]{1,3}$/.test(v.word) && Number(v.word) <= 255) return { kind: 'proto', proto: Number(v.word) };
    this.fail('a protocol (a number 0-255 or tcp, udp, icmp, icmp6, sctp, igmp, gre, esp, ah)', v);
  }
}

function parsePort(text: string): number {
  if (!/^[0-9]{1,5}$/.test(text)) return -1;
  const n = Number(text);
  return n > 65535 ? -1 : n;
}

// ------------------------------------------------------------------------------------------------
// Evaluation: compiled once into closures; no allocation per packet, index loops only.

function u32(buf: Uint8Array, o: number): number {
  return ((buf[o] << 24) | (buf[o + 1] << 16) | (buf[o + 2] << 8) | buf[o + 3]) >>> 0;
}

/**
 * ARP for IPv4 over Ethernet (RFC 826): htype 1, ptype 0x0800, hlen 6, plen 4, 28 bytes. As in BPF,
 * `host` and `net` also match its sender (src) and target (dst) protocol addresses.
 */
function isArpIpv4(st: PacketState, buf: Uint8Array): boolean {
  const o = st.l3Off;
  return (
    st.etherType === ETHERTYPE_ARP &&
    o >= 0 &&
    st.innerEnd - o >= 28 &&
    buf[o] === 0 &&
    buf[o + 1] === 1 &&
    buf[o + 2] === 0x08 &&
    buf[o + 3] === 0x00 &&
    buf[o + 4] === 6 &&
    buf[o + 5] === 4
  );
}

function equal16(buf: Uint8Array, off: number, want: Uint8Array): boolean {
  for (let i = 0; i < 16; i++) if (buf[off + i] !== want[i]) return false;
  return true;
}

/** A compiled term: tests a decoded packet. */
type Test = (st: PacketState, buf: Uint8Array) => boolean;

/**
 * Turn the tree into closures once, at compile time: each term's constants (address, prefix, port
 * range, direction) are captured, so a match runs straight-line comparisons instead of dispatching on
 * node kinds for every packet. The closures allocate nothing when called.
 */
function compileNode(n: Node): Test {
  switch (n.kind) {
    case 'all':
      return () => true;
    case 'and': {
      const t = n.items.map(compileNode);
      if (t.length === 2) {
        const [x, y] = t as [Test, Test];
        return (st, buf) => x(st, buf) && y(st, buf);
      }
      return (st, buf) => {
        for (let i = 0; i < t.length; i++) if (!t[i](st, buf)) return false;
        return true;
      };
    }
    case 'or': {
      const t = n.items.map(compileNode);
      if (t.length === 2) {
        const [x, y] = t as [Test, Test];
        return (st, buf) => x(st, buf) || y(st, buf);
      }
      return (st, buf) => {
        for (let i = 0; i < t.length; i++) if (t[i](st, buf)) return true;
        return false;
      };
    }
    case 'not': {
      const x = compileNode(n.item);
      return (st, buf) => !x(st, buf);
    }
    case 'host': {
      const src = n.dir !== DST;
      const dst = n.dir !== SRC;
      const ip = n.ip;
      if (ip.family === 4) {
        const v4 = ip.v4;
        return (st, buf) => {
          if (st.l3Family === AF_INET) return (src && st.src4 === v4) || (dst && st.dst4 === v4);
          if (isArpIpv4(st, buf)) return (src && u32(buf, st.l3Off + 14) === v4) || (dst && u32(buf, st.l3Off + 24) === v4);
          return false;
        };
      }
      const v6 = ip.v6;
      return (st, buf) => st.l3Family === AF_INET6 && ((src && equal16(buf, st.src6Off, v6)) || (dst && equal16(buf, st.dst6Off, v6)));
    }
    case 'net': {
      const src = n.dir !== DST;
      const dst = n.dir !== SRC;
      const c = n.cidr;
      if (c.family === 4) {
        return (st, buf) => {
          if (st.l3Family === AF_INET) return (src && ipv4InCidr(st.src4, c)) || (dst && ipv4InCidr(st.dst4, c));
          if (isArpIpv4(st, buf)) return (src && ipv4InCidr(u32(buf, st.l3Off + 14), c)) || (dst && ipv4InCidr(u32(buf, st.l3Off + 24), c));
          return false;
        };
      }
      return (st, buf) => st.l3Family === AF_INET6 && ((src && ipv6InCidr(buf, st.src6Off, c)) || (dst && ipv6InCidr(buf, st.dst6Off, c)));
    }
    case 'port': {
      const src = n.dir !== DST;
      const dst = n.dir !== SRC;
      const { lo, hi, proto } = n;
      return (st) => {
        const p = st.ipProto;
        if (st.srcPort < 0) return false;
        if (proto >= 0 ? p !== proto : p !== IPPROTO_TCP && p !== IPPROTO_UDP && p !== IPPROTO_SCTP) return false;
        return (src && st.srcPort >= lo && st.srcPort <= hi) || (dst && st.dstPort >= lo && st.dstPort <= hi);
      };
    }
    case 'proto': {
      const proto = n.proto;
      return (st) => st.ipProto === proto;
    }
    case 'ethertype': {
      const type = n.type;
      return (st) => st.etherType === type;
    }
    case 'vlan': {
      const id = n.id;
      if (id < 0) return (st) => st.vlanCount > 0;
      return (st) => {
        for (let i = 0; i < st.vlanCount; i++) if (st.vlanIds[i] === id) return true;
        return false;
      };
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Printing (for logs, the audit trail and tests of precedence).

const DIR_TEXT = ['', 'src ', 'dst '] as const;

function protoName(p: number): string | undefined {
  for (const [name, num] of PROTO_NAMES) if (num === p) return name;
  return undefined;
}

/** Protocols that are terms on their own (`tcp`); the others print as `proto gre` or `proto 99`. */
const BARE_PROTOS = new Set(['tcp', 'udp', 'sctp', 'icmp', 'icmp6']);

function nodeText(n: Node): string {
  const inner = (c: Node): string => (c.kind === 'and' || c.kind === 'or' ? `(${nodeText(c)})` : nodeText(c));
  switch (n.kind) {
    case 'all':
      return '';
    case 'and':
    case 'or':
      return n.items.map(inner).join(` ${n.kind} `);
    case 'not':
      return `not ${inner(n.item)}`;
    case 'host':
      return `${DIR_TEXT[n.dir]}host ${n.ip.family === 4 ? ipv4ToString(n.ip.v4) : ipv6ToString(n.ip.v6, 0)}`;
    case 'net':
      return `${DIR_TEXT[n.dir]}net ${cidrToString(n.cidr)}`;
    case 'port': {
      const q = n.proto >= 0 ? `${protoName(n.proto)} ` : '';
      return n.range ? `${q}${DIR_TEXT[n.dir]}portrange ${n.lo}-${n.hi}` : `${q}${DIR_TEXT[n.dir]}port ${n.lo}`;
    }
    case 'proto': {
      const name = protoName(n.proto);
      return name === undefined ? `proto ${n.proto}` : BARE_PROTOS.has(name) ? name : `proto ${name}`;
    }
    case 'ethertype':
      return n.type === ETHERTYPE_IPV4 ? 'ip' : n.type === ETHERTYPE_IPV6 ? 'ip6' : 'arp';
    case 'vlan':
      return n.id < 0 ? 'vlan' : `vlan ${n.id}`;
  }
}

class CompiledFilter implements PacketFilter {
  private readonly st = new PacketState();
  private readonly test: Test;

  constructor(
    readonly expr: string,
    private readonly root: Node,
  ) {
    this.test = compileNode(root);
  }

  matches(buf: Uint8Array, off: number, end: number): boolean {
    const st = this.st;
    st.reset();
    if (decodeInnerFrame(buf, off, end, st) !== DROP.OK) return false;
    return this.test(st, buf);
  }

  matchesDecoded(st: PacketState, buf: Uint8Array): boolean {
    return this.test(st, buf);
  }

  toString(): string {
    return nodeText(this.root);
  }
}

/**
 * Compile a capture filter. An empty (or all-blank) filter matches every frame. Throws
 * MG_ERR_FILTER_SYNTAX naming the position (1-based) and what was expected there.
 */
export function compileFilter(expr: string): PacketFilter {
  if (expr.length > MAX_FILTER_LENGTH) {
    throw syntaxError(MAX_FILTER_LENGTH + 1, `expected at most ${MAX_FILTER_LENGTH} characters, found ${expr.length}`);
  }
  const root = new Parser(tokenize(expr), expr.length + 1).parse();
  return new CompiledFilter(expr, root);
}
