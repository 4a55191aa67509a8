/**
 * The manifest of authorized mirror sessions (docs/manifest.md): parsed with node positions kept, so
 * every problem names file, line and field (`m.yaml:7: sessions[1].vni: ...`), and checked completely:
 * all problems are collected, not just the first, so one `manifest check` run shows everything to fix.
 *
 * The checks are hand-written over the YAML nodes rather than run through a schema library on the
 * converted value, because the converted value has lost what we need to be strict: whether `5569041`
 * was written as a number or a quoted string, as `5.0`, or as `0x54FA11`.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  type Document,
  type Node,
  type ParsedNode,
  type Scalar,
  type YAMLMap,
} from 'yaml';
import { MgError, type Problem } from '../errors.js';
import { canonicalIp } from '../decode/addr.js';
import type { Manifest, ManifestSession } from './manifest-types.js';

export type { Manifest, ManifestSession } from './manifest-types.js';

export const MANIFEST_VERSION = 1;

/** VXLAN network identifiers are 24 bits (RFC 7348 section 5); AWS allows the whole range. */
export const VNI_MAX = 16_777_215;

/**
 * EC2 resource IDs: a prefix and 8 hex digits (older resources) or 17 (since 2016, see the EC2 user
 * guide "Resource IDs"). AWS prints them in lowercase.
 */
const ID_FORMS = {
  id: { prefix: 'tms-', re: /^tms-(?:[0-9a-f]{8}|[0-9a-f]{17})$/ },
  sourceEni: { prefix: 'eni-', re: /^eni-(?:[0-9a-f]{8}|[0-9a-f]{17})$/ },
  targetId: { prefix: 'tmt-', re: /^tmt-(?:[0-9a-f]{8}|[0-9a-f]{17})$/ },
  filterId: { prefix: 'tmf-', re: /^tmf-(?:[0-9a-f]{8}|[0-9a-f]{17})$/ },
  /** The GWLB endpoint (a VPC endpoint) the session's traffic must arrive through, when the target is one. */
  gwlbEndpointId: { prefix: 'vpce-', re: /^vpce-(?:[0-9a-f]{8}|[0-9a-f]{17})$/ },
} as const;

export function isSessionId(s: string): boolean {
  return ID_FORMS.id.re.test(s);
}
export function isEniId(s: string): boolean {
  return ID_FORMS.sourceEni.re.test(s);
}
export function isTargetId(s: string): boolean {
  return ID_FORMS.targetId.re.test(s);
}
export function isFilterId(s: string): boolean {
  return ID_FORMS.filterId.re.test(s);
}

const TOP_KEYS = ['version', 'sessions'] as const;
const SESSION_KEYS = ['id', 'vni', 'sourceEni', 'sourceIps', 'targetId', 'filterId', 'gwlbEndpointId', 'owner', 'description', 'region', 'expires'] as const;

/** AWS region names: `eu-central-1`, `us-gov-west-1`, `cn-north-1`. */
const REGION_RE = /^[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}$/;

export interface ManifestCheck {
  /** Present only when there is no problem. */
  manifest?: Manifest;
  problems: Problem[];
}

/** Read, parse and check a manifest file; throws MG_ERR_MANIFEST_READ or MG_ERR_MANIFEST_INVALID. */
export function loadManifest(path: string): Manifest {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new MgError('MG_ERR_MANIFEST_READ', `${path}: ${(e as Error).message}`, { cause: e });
  }
  const r = checkManifestText(bytes.toString('utf8'), path, sha256(bytes));
  if (!r.manifest) {
    const n = r.problems.length;
    throw new MgError('MG_ERR_MANIFEST_INVALID', `${path}: ${n} problem${n === 1 ? '' : 's'}`, { problems: r.problems });
  }
  return r.manifest;
}

/** Check manifest text; `file` is used in problems and kept in the result. */
export function checkManifestText(text: string, file: string, digest = sha256(Buffer.from(text, 'utf8'))): ManifestCheck {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const problems: Problem[] = [];
  const lineOf = (offset: number | undefined): number => (offset === undefined ? 1 : lc.linePos(offset).line);

  let syntaxBroken = false;
  for (const e of doc.errors) {
    // A duplicate key leaves a usable tree (we report it and go on); any other error does not, and
    // checking what the parser salvaged would only add confusing follow-on problems.
    if (e.code !== 'DUPLICATE_KEY') syntaxBroken = true;
    const msg = e.message.split('\n')[0]!;
    problems.push({ file, line: lineOf(e.pos[0]), message: e.code === 'DUPLICATE_KEY' ? 'duplicate key in a mapping' : `YAML syntax: ${msg}` });
  }
  if (syntaxBroken) return { problems: sortProblems(problems) };

  const v = new Validator(doc, file, lineOf, problems);
  const sessions = v.top();
  if (problems.length > 0 || sessions === null) return { problems: sortProblems(problems) };
  const manifest: Manifest = deepFreeze({ file, version: 1 as const, sessions, sha256: digest });
  return { manifest, problems: [] };
}

export function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Render `sessions[2].sourceIps[0]` from a path. */
export function fieldPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out ? `.${seg}` : seg;
  return out;
}

class Validator {
  constructor(
    private readonly doc: Document.Parsed,
    private readonly file: string,
    private readonly lineOf: (offset: number | undefined) => number,
    private readonly problems: Problem[],
  ) {}

  private problem(node: Node | null | undefined, path: readonly (string | number)[], message: string): void {
    this.problems.push({ file: this.file, line: this.lineOf(node?.range?.[0]), field: fieldPath(path) || undefined, message });
  }

  private deref(node: unknown): ParsedNode | null {
    if (isAlias(node)) return (node.resolve(this.doc) as ParsedNode | undefined) ?? null;
    return (node as ParsedNode | null) ?? null;
  }

  /** Key/value pairs of a mapping, reporting unknown and non-string keys. */
  private entries(map: YAMLMap, path: (string | number)[], known: readonly string[]): Map<string, { key: Node; value: ParsedNode | null }> {
    const out = new Map<string, { key: Node; value: ParsedNode | null }>();
    for (const pair of map.items) {
      const keyNode = pair.key as Node;
      const key = isScalar(keyNode) ? keyNode.value : undefined;
      if (typeof key !== 'string') {
        this.problem(keyNode, path, `keys must be plain strings, got ${describeNode(keyNode)}`);
        continue;
      }
      if (!known.includes(key)) {
        const hint = suggest(key, known);
        this.problem(keyNode, [...path, key], `unknown key${hint ? ` (did you mean ${hint}?)` : ''}; allowed: ${known.join(', ')}`);
        continue;
      }
      if (!out.has(key)) out.set(key, { key: keyNode, value: this.deref(pair.value) });
    }
    return out;
  }

  top(): ManifestSession[] | null {
    const root = this.deref(this.doc.contents);
    if (root === null || (isScalar(root) && root.value === null)) {
      this.problem(null, [], 'the manifest is empty; it needs `version: 1` and `sessions:`');
      return null;
    }
    if (!isMap(root)) {
      this.problem(root, [], `the manifest must be a mapping with version and sessions, got ${describeNode(root)}`);
      return null;
    }
    const e = this.entries(root, [], TOP_KEYS);
    const version = e.get('version');
    if (!version) this.problem(root, ['version'], 'required; write `version: 1`');
    else if (!isScalar(version.value) || version.value.value !== MANIFEST_VERSION || typeof version.value.source !== 'string' || version.value.source !== '1') {
      this.problem(version.value ?? version.key, ['version'], `must be 1, got ${describeNode(version.value)}`);
    }
    const s = e.get('sessions');
    if (!s) {
      this.problem(root, ['sessions'], 'required; write `sessions: []` for a manifest that authorizes nothing');
      return null;
    }
    // `sessions:` with nothing after it (or only comments: what `manifest init` writes when every entry
    // is commented out) authorizes nothing, like `sessions: []`; uncommenting an entry makes it a list.
    if (s.value === null || (isScalar(s.value) && s.value.value === null)) return [];
    if (!isSeq(s.value)) {
      this.problem(s.value ?? s.key, ['sessions'], `must be a list of sessions, got ${describeNode(s.value)}`);
      return null;
    }
    const sessions: ManifestSession[] = [];
    s.value.items.forEach((item, i) => {
      const session = this.session(this.deref(item), i);
      if (session) sessions.push(session);
    });
    this.crossChecks(s.value.items.map((it) => this.deref(it)));
    return sessions;
  }

  private session(node: ParsedNode | null, i: number): ManifestSession | null {
    const path = ['sessions', i];
    if (!isMap(node)) {
      this.problem(node, path, `each session must be a mapping with at least id and vni, got ${describeNode(node)}`);
      return null;
    }
    const before = this.problems.length;
    const e = this.entries(node, path, SESSION_KEYS);
    const line = this.lineOf(node.range?.[0]);
    const get = (k: string): { key: Node; value: ParsedNode | null } | undefined => {
      const f = e.get(k);
      if (f && (f.value === null || (isScalar(f.value) && f.value.value === null))) {
        const extra = k === 'sourceIps' ? '; omit sourceIps to allow any source, or list the IPs' : '; remove the key or give a value';
        this.problem(f.value ?? f.key, [...path, k], `has no value${extra}`);
        return undefined;
      }
      return f;
    };

    const id = get('id');
    let idValue: string | undefined;
    if (!e.has('id')) this.problem(node, [...path, 'id'], 'required');
    else if (id) idValue = this.awsId(id.value!, [...path, 'id'], 'id');

    const vni = get('vni');
    let vniValue: number | undefined;
    if (!e.has('vni')) this.problem(node, [...path, 'vni'], 'required');
    else if (vni) vniValue = this.vni(vni.value!, [...path, 'vni']);

    const out: ManifestSession = { id: idValue ?? '', vni: vniValue ?? -1, line };
    const eni = get('sourceEni');
    if (eni) out.sourceEni = this.awsId(eni.value!, [...path, 'sourceEni'], 'sourceEni');
    const tgt = get('targetId');
    if (tgt) out.targetId = this.awsId(tgt.value!, [...path, 'targetId'], 'targetId');
    const flt = get('filterId');
    if (flt) out.filterId = this.awsId(flt.value!, [...path, 'filterId'], 'filterId');
    const gwlbe = get('gwlbEndpointId');
    if (gwlbe) out.gwlbEndpointId = this.awsId(gwlbe.value!, [...path, 'gwlbEndpointId'], 'gwlbEndpointId');
    const ips = get('sourceIps');
    if (ips) out.sourceIps = this.sourceIps(ips.value!, [...path, 'sourceIps']);
    const owner = get('owner');
    if (owner) out.owner = this.text(owner.value!, [...path, 'owner']);
    const desc = get('description');
    if (desc) out.description = this.text(desc.value!, [...path, 'description']);
    const region = get('region');
    if (region) {
      out.region = this.text(region.value!, [...path, 'region']);
      if (out.region !== undefined && !REGION_RE.test(out.region)) {
        this.problem(region.value, [...path, 'region'], `must be an AWS region name such as eu-central-1, got ${JSON.stringify(out.region)}`);
      }
    }
    const exp = get('expires');
    if (exp) out.expires = this.expires(exp.value!, [...path, 'expires']);

    if (this.problems.length > before) return null;
    for (const k of Object.keys(out) as (keyof ManifestSession)[]) if (out[k] === undefined) delete out[k];
    return out;
  }

  private awsId(node: ParsedNode, path: (string | number)[], field: keyof typeof ID_FORMS): string | undefined {
    const form = ID_FORMS[field];
    if (!isScalar(node) || typeof node.value !== 'string') {
      this.problem(node, path, `must be a ${form.prefix} ID string, got ${describeNode(node)}`);
      return undefined;
    }
    if (!form.re.test(node.value)) {
      this.problem(node, path, `must be "${form.prefix}" and 8 or 17 lowercase hex digits, got ${JSON.stringify(node.value)}`);
      return undefined;
    }
    return node.value;
  }

  private vni(node: ParsedNode, path: (string | number)[]): number | undefined {
    if (!isPlainInteger(node)) {
      this.problem(node, path, `must be an integer from 0 to ${VNI_MAX}, got ${describeNode(node)}`);
      return undefined;
    }
    const n = node.value as number;
    if (!Number.isSafeInteger(n) || n < 0 || n > VNI_MAX) {
      this.problem(node, path, `must be from 0 to ${VNI_MAX} (24 bits), got ${node.source}`);
      return undefined;
    }
    return n;
  }

  private sourceIps(node: ParsedNode, path: (string | number)[]): string[] | undefined {
    if (!isSeq(node)) {
      this.problem(node, path, `must be a list of IP addresses, e.g. [172.31.0.238], got ${describeNode(node)}`);
      return undefined;
    }
    if (node.items.length === 0) {
      this.problem(node, path, 'is an empty list; omit sourceIps to allow any source, or list the IPs');
      return undefined;
    }
    const out: string[] = [];
    const seen = new Map<string, number>();
    let ok = true;
    node.items.forEach((raw, j) => {
      const item = this.deref(raw);
      const p = [...path, j];
      if (!isScalar(item) || typeof item.value !== 'string') {
        this.problem(item, p, `must be an IPv4 or IPv6 address, got ${describeNode(item)}`);
        ok = false;
        return;
      }
      const c = canonicalIp(item.value);
      if (c === null) {
        this.problem(item, p, `not an IPv4 or IPv6 address: ${JSON.stringify(item.value)}`);
        ok = false;
        return;
      }
      const prev = seen.get(c);
      if (prev !== undefined) {
        this.problem(item, p, `${c} is already listed at sourceIps[${prev}]`);
        ok = false;
        return;
      }
      seen.set(c, j);
      out.push(c);
    });
    return ok ? out : undefined;
  }

  private text(node: ParsedNode, path: (string | number)[]): string | undefined {
    if (!isScalar(node) || typeof node.value !== 'string') {
      this.problem(node, path, `must be a string, got ${describeNode(node)}`);
      return undefined;
    }
    return node.value;
  }

  private expires(node: ParsedNode, path: (string | number)[]): number | undefined {
    const text = isScalar(node) ? (typeof node.value === 'string' ? node.value : node.source) : undefined;
    const r = typeof text === 'string' ? parseIsoTime(text) : { error: 'not a date' };
    if ('error' in r) {
      this.problem(node, path, `must be an ISO-8601 date or date-time with a time zone, e.g. 2027-01-01T00:00:00Z (${r.error}), got ${describeNode(node)}`);
      return undefined;
    }
    return r.ms;
  }

  /** Duplicate IDs and overlapping (source IP, VNI) claims, across sessions that are themselves valid. */
  private crossChecks(items: (ParsedNode | null)[]): void {
    interface Claim {
      index: number;
      id: string;
      line: number;
      vni: number;
      ips: string[] | null; // null: any source
      vniNode: Node;
      ipsNode: Node | null;
    }
    const firstById = new Map<string, Claim>();
    const byVni = new Map<number, Claim[]>();
    items.forEach((node, index) => {
      if (!isMap(node)) return;
      const idNode = node.get('id', true) as ParsedNode | undefined;
      const vniNode = node.get('vni', true) as ParsedNode | undefined;
      const ipsNode = (node.get('sourceIps', true) as ParsedNode | undefined) ?? null;
      const id = isScalar(idNode) && typeof idNode.value === 'string' && ID_FORMS.id.re.test(idNode.value) ? idNode.value : null;
      const line = this.lineOf(node.range?.[0]);
      if (id !== null) {
        const first = firstById.get(id);
        if (first) this.problem(idNode, ['sessions', index, 'id'], `duplicate session ID ${id}; sessions[${first.index}] at line ${first.line} has it too`);
      }
      const vni = plainVni(vniNode);
      if (vni === null) return;
      let ips: string[] | null = null;
      if (ipsNode !== null) {
        if (!isSeq(ipsNode)) return;
        ips = [];
        for (const it of ipsNode.items) {
          const c = isScalar(it) && typeof it.value === 'string' ? canonicalIp(it.value) : null;
          if (c === null) return; // already reported; no overlap check on a broken list
          ips.push(c);
        }
      }
      const claim: Claim = { index, id: id ?? '(no valid id)', line, vni, ips, vniNode: vniNode!, ipsNode };
      if (id !== null && !firstById.has(id)) firstById.set(id, claim);
      const same = byVni.get(vni) ?? [];
      for (const other of same) this.overlap(claim, other);
      same.push(claim);
      byVni.set(vni, same);
    });
  }

  private overlap(
    later: { index: number; vni: number; ips: string[] | null; vniNode: Node; ipsNode: Node | null },
    earlier: { index: number; id: string; line: number; ips: string[] | null },
  ): void {
    const other = `sessions[${earlier.index}] (${earlier.id}, line ${earlier.line})`;
    const fix = 'each (source IP, VNI) pair must map to exactly one session';
    if (later.ips === null || earlier.ips === null) {
      const who = later.ips === null ? 'this session allows any source' : `${other} allows any source`;
      const node = later.ips === null ? later.vniNode : later.ipsNode;
      const field = later.ips === null ? 'vni' : 'sourceIps';
      this.problem(node, ['sessions', later.index, field], `VNI ${later.vni} is also claimed by ${other} and ${who}; list sourceIps on both so ${fix}`);
      return;
    }
    const shared = later.ips.filter((ip) => earlier.ips!.includes(ip));
    if (shared.length > 0) {
      this.problem(later.ipsNode, ['sessions', later.index, 'sourceIps'], `(${shared.join(', ')}, VNI ${later.vni}) is also claimed by ${other}; ${fix}`);
    }
  }
}

/**
 * An ISO-8601 / RFC 3339 date (`2027-01-01`, midnight UTC) or date-time with a zone (`Z` or `+hh:mm`).
 * A date-time without a zone is refused: its instant would depend on the host's time zone.
 */
export function parseIsoTime(text: string): { ms: number } | { error: string } {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?(?:([Zz])|([+-])(\d{2}):?(\d{2}))?)?$/.exec(text.trim());
  if (!m) return { error: 'not YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ' };
  const [, y, mo, d, h, mi, s, frac, z, sign, oh, om] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = h === undefined ? 0 : Number(h);
  const minute = mi === undefined ? 0 : Number(mi);
  const second = s === undefined ? 0 : Number(s);
  if (h !== undefined && z === undefined && sign === undefined) return { error: 'a time needs a time zone, Z or +hh:mm' };
  if (month < 1 || month > 12) return { error: `month ${mo} does not exist` };
  const dim = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (day < 1 || day > dim) return { error: `day ${d} does not exist in ${y}-${mo}` };
  if (hour > 23 || minute > 59 || second > 59) return { error: 'time out of range' };
  let ms = Date.UTC(year, month - 1, day, hour, minute, second) + (frac ? Math.floor(Number(frac) * 1000) : 0);
  if (sign !== undefined) {
    const off = Number(oh) * 60 + Number(om);
    if (Number(oh) > 23 || Number(om) > 59) return { error: 'time zone offset out of range' };
    ms -= (sign === '+' ? 1 : -1) * off * 60_000;
  }
  return { ms };
}

/**
 * Only a plain decimal (or 0x hex) integer: a quoted "42", 42.0 or 4.2e1 is a typo to point out, not
 * something to coerce.
 */
function isPlainInteger(node: unknown): node is Scalar & { source: string } {
  return (
    isScalar(node) &&
    node.type === 'PLAIN' &&
    typeof node.value === 'number' &&
    typeof node.source === 'string' &&
    /^(?:[0-9]+|0x[0-9a-fA-F]+)$/.test(node.source)
  );
}

function plainVni(node: unknown): number | null {
  if (!isPlainInteger(node)) return null;
  const n = node.value as number;
  return Number.isSafeInteger(n) && n >= 0 && n <= VNI_MAX ? n : null;
}

function describeNode(node: unknown): string {
  if (node === null || node === undefined) return 'nothing';
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) {
    const v = node.value;
    if (v === null) return 'nothing';
    if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
    if (typeof v === 'number') return typeof node.source === 'string' ? node.source : String(v);
    return String(v);
  }
  return 'an unsupported value';
}

/** The closest known key within edit distance 2 (case-insensitive), for "did you mean". */
function suggest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const k of known) {
    const d = editDistance(key.toLowerCase(), k.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

function sortProblems(p: Problem[]): Problem[] {
  return p.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
}

export function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}
