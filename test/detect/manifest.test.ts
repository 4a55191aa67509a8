import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatProblem, MgError } from '../../src/errors.js';
import { canonicalIp } from '../../src/decode/addr.js';
import { checkManifestText, loadManifest, parseIsoTime, sha256 } from '../../src/detect/manifest.js';
import { tmpDir } from '../helpers/tmp.js';

const VALID = `version: 1
sessions:
  - id: tms-0123456789abcdef0        # traffic mirror session ID
    vni: 5569041
    sourceEni: eni-0123456789abcdef0
    sourceIps: [172.31.0.238]
    targetId: tmt-0123456789abcdef0
    filterId: tmf-0123456789abcdef0
    owner: netops
    expires: 2027-01-01T00:00:00Z
  - id: tms-0a1b2c3d
    vni: 0x54FA12
    sourceIps:
      - FE80:0:0:0:0:0:0:1
      - 2001:db8::0:1
    description: "IDS tap"
    region: eu-central-1
  - id: tms-1111111111111111a
    vni: 5569041
    sourceIps: [172.31.0.239]
    expires: 2026-06-30
`;

/** The problems as the CLI prints them. */
function lines(text: string, file = 'm.yaml'): string[] {
  return checkManifestText(text, file).problems.map(formatProblem);
}

function session(body: string): string {
  return `version: 1\nsessions:\n  - id: tms-0123456789abcdef0\n    vni: 42\n${body}`;
}

describe('manifest: a valid file', () => {
  it('parses every field, canonicalizes IPs and keeps entry lines', () => {
    const r = checkManifestText(VALID, 'm.yaml');
    expect(r.problems).toEqual([]);
    const m = r.manifest!;
    expect(m.version).toBe(1);
    expect(m.file).toBe('m.yaml');
    expect(m.sha256).toBe(sha256(Buffer.from(VALID)));
    expect(m.sessions).toHaveLength(3);
    expect(m.sessions[0]).toEqual({
      id: 'tms-0123456789abcdef0',
      vni: 5569041,
      sourceEni: 'eni-0123456789abcdef0',
      sourceIps: ['172.31.0.238'],
      targetId: 'tmt-0123456789abcdef0',
      filterId: 'tmf-0123456789abcdef0',
      owner: 'netops',
      expires: Date.UTC(2027, 0, 1),
      line: 3,
    });
    // Hex VNIs are integers too; IPv6 is stored in RFC 5952 form.
    expect(m.sessions[1]).toMatchObject({ id: 'tms-0a1b2c3d', vni: 0x54fa12, sourceIps: ['fe80::1', '2001:db8::1'], description: 'IDS tap', region: 'eu-central-1', line: 11 });
    // A bare date is midnight UTC.
    expect(m.sessions[2]!.expires).toBe(Date.UTC(2026, 5, 30));
    expect(Object.isFrozen(m.sessions[0])).toBe(true);
  });

  it('accepts an empty list of sessions (nothing is authorized)', () => {
    expect(checkManifestText('version: 1\nsessions: []\n', 'm.yaml').manifest?.sessions).toEqual([]);
  });

  it('loads from a file and hashes its bytes', () => {
    const dir = tmpDir();
    const f = join(dir, 'manifest.yaml');
    writeFileSync(f, VALID);
    const m = loadManifest(f);
    expect(m.file).toBe(f);
    expect(m.sha256).toBe(sha256(Buffer.from(VALID)));
  });
});

describe('manifest: every error class, as FILE:LINE: field: message', () => {
  it('version', () => {
    expect(lines('version: 2\nsessions: []\n')).toEqual(['m.yaml:1: version: must be 1, got 2']);
    expect(lines('version: "1"\nsessions: []\n')).toEqual(['m.yaml:1: version: must be 1, got the string "1"']);
    expect(lines('sessions: []\n')).toEqual(['m.yaml:1: version: required; write `version: 1`']);
  });

  it('sessions missing or not a list; empty file; not a mapping', () => {
    expect(lines('version: 1\n')).toEqual(['m.yaml:1: sessions: required; write `sessions: []` for a manifest that authorizes nothing']);
    expect(lines('version: 1\nsessions: tms-0123456789abcdef0\n')).toEqual(['m.yaml:2: sessions: must be a list of sessions, got the string "tms-0123456789abcdef0"']);
    expect(lines('')).toEqual(['m.yaml:1: the manifest is empty; it needs `version: 1` and `sessions:`']);
    expect(lines('- a\n- b\n')).toEqual(['m.yaml:1: the manifest must be a mapping with version and sessions, got a list']);
    expect(lines('version: 1\nsessions:\n  - just-a-string\n')).toEqual(['m.yaml:3: sessions[0]: each session must be a mapping with at least id and vni, got the string "just-a-string"']);
  });

  it('unknown keys, at top level and in a session, with a suggestion', () => {
    expect(lines('version: 1\nsessions: []\nsesions: []\n')).toEqual([
      'm.yaml:3: sesions: unknown key (did you mean sessions?); allowed: version, sessions',
    ]);
    expect(lines(session('    sourceIP: [10.0.0.1]\n'))).toEqual([
      'm.yaml:5: sessions[0].sourceIP: unknown key (did you mean sourceIps?); allowed: id, vni, sourceEni, sourceIps, targetId, filterId, gwlbEndpointId, owner, description, region, expires',
    ]);
    expect(lines(session('    colour: blue\n'))[0]).toBe(
      'm.yaml:5: sessions[0].colour: unknown key; allowed: id, vni, sourceEni, sourceIps, targetId, filterId, gwlbEndpointId, owner, description, region, expires',
    );
  });

  it('required id and vni', () => {
    expect(lines('version: 1\nsessions:\n  - owner: x\n')).toEqual(['m.yaml:3: sessions[0].id: required', 'm.yaml:3: sessions[0].vni: required']);
  });

  it('malformed IDs', () => {
    const text = `version: 1
sessions:
  - id: tms-0123456789ABCDEF0
    vni: 1
    sourceEni: eni-123
    targetId: tms-0123456789abcdef0
    filterId: 12345678
`;
    expect(lines(text)).toEqual([
      'm.yaml:3: sessions[0].id: must be "tms-" and 8 or 17 lowercase hex digits, got "tms-0123456789ABCDEF0"',
      'm.yaml:5: sessions[0].sourceEni: must be "eni-" and 8 or 17 lowercase hex digits, got "eni-123"',
      'm.yaml:6: sessions[0].targetId: must be "tmt-" and 8 or 17 lowercase hex digits, got "tms-0123456789abcdef0"',
      'm.yaml:7: sessions[0].filterId: must be a tmf- ID string, got 12345678',
    ]);
  });

  it('VNI out of range, as a string, as a float', () => {
    const base = 'version: 1\nsessions:\n  - id: tms-0123456789abcdef0\n    vni: ';
    expect(lines(`${base}16777216\n`)).toEqual(['m.yaml:4: sessions[0].vni: must be from 0 to 16777215 (24 bits), got 16777216']);
    expect(lines(`${base}-1\n`)).toEqual(['m.yaml:4: sessions[0].vni: must be an integer from 0 to 16777215, got -1']);
    expect(lines(`${base}"42"\n`)).toEqual(['m.yaml:4: sessions[0].vni: must be an integer from 0 to 16777215, got the string "42"']);
    expect(lines(`${base}42.0\n`)).toEqual(['m.yaml:4: sessions[0].vni: must be an integer from 0 to 16777215, got 42.0']);
    expect(lines(`${base}4.2e1\n`)).toEqual(['m.yaml:4: sessions[0].vni: must be an integer from 0 to 16777215, got 4.2e1']);
    expect(lines(`${base}16777215\n`)).toEqual([]);
    expect(lines(`${base}0\n`)).toEqual([]);
  });

  it('malformed IPs, duplicates in a list, an empty list, an empty value, a scalar', () => {
    expect(lines(session('    sourceIps: [300.1.1.1, 10.0.0.01, "fe80::1%eth0", 10.0.0.1, 10.0.0.1, 7]\n'))).toEqual([
      'm.yaml:5: sessions[0].sourceIps[0]: not an IPv4 or IPv6 address: "300.1.1.1"',
      'm.yaml:5: sessions[0].sourceIps[1]: not an IPv4 or IPv6 address: "10.0.0.01"',
      'm.yaml:5: sessions[0].sourceIps[2]: not an IPv4 or IPv6 address: "fe80::1%eth0"',
      'm.yaml:5: sessions[0].sourceIps[4]: 10.0.0.1 is already listed at sourceIps[3]',
      'm.yaml:5: sessions[0].sourceIps[5]: must be an IPv4 or IPv6 address, got 7',
    ]);
    expect(lines(session('    sourceIps: [2001:DB8::1, 2001:db8:0::1]\n'))).toEqual(['m.yaml:5: sessions[0].sourceIps[1]: 2001:db8::1 is already listed at sourceIps[0]']);
    expect(lines(session('    sourceIps: []\n'))).toEqual(['m.yaml:5: sessions[0].sourceIps: is an empty list; omit sourceIps to allow any source, or list the IPs']);
    expect(lines(session('    sourceIps:\n'))).toEqual(['m.yaml:5: sessions[0].sourceIps: has no value; omit sourceIps to allow any source, or list the IPs']);
    expect(lines(session('    sourceIps: 10.0.0.1\n'))).toEqual(['m.yaml:5: sessions[0].sourceIps: must be a list of IP addresses, e.g. [172.31.0.238], got the string "10.0.0.1"']);
  });

  it('expires: not a date, no time zone, impossible day', () => {
    expect(lines(session('    expires: soon\n'))).toEqual([
      'm.yaml:5: sessions[0].expires: must be an ISO-8601 date or date-time with a time zone, e.g. 2027-01-01T00:00:00Z (not YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ), got the string "soon"',
    ]);
    expect(lines(session('    expires: 2027-01-01T00:00:00\n'))).toEqual([
      'm.yaml:5: sessions[0].expires: must be an ISO-8601 date or date-time with a time zone, e.g. 2027-01-01T00:00:00Z (a time needs a time zone, Z or +hh:mm), got the string "2027-01-01T00:00:00"',
    ]);
    expect(lines(session('    expires: 2027-02-29\n'))[0]).toContain('(day 29 does not exist in 2027-02)');
  });

  it('owner, description and region types', () => {
    expect(lines(session('    owner: 12\n    region: EU-central\n'))).toEqual([
      'm.yaml:5: sessions[0].owner: must be a string, got 12',
      'm.yaml:6: sessions[0].region: must be an AWS region name such as eu-central-1, got "EU-central"',
    ]);
  });

  it('duplicate session IDs name the first occurrence', () => {
    const text = `version: 1
sessions:
  - id: tms-0123456789abcdef0
    vni: 1
  - id: tms-0123456789abcdef0
    vni: 2
`;
    expect(lines(text)).toEqual(['m.yaml:5: sessions[1].id: duplicate session ID tms-0123456789abcdef0; sessions[0] at line 3 has it too']);
  });

  it('overlapping (source IP, VNI) claims name both sessions', () => {
    const text = `version: 1
sessions:
  - id: tms-00000001
    vni: 42
    sourceIps: [10.0.0.1, 10.0.0.2]
  - id: tms-00000002
    vni: 42
    sourceIps: [10.0.0.3, 10.0.0.2]
  - id: tms-00000003
    vni: 42
  - id: tms-00000004
    vni: 43
    sourceIps: [10.0.0.1]
`;
    expect(lines(text)).toEqual([
      'm.yaml:8: sessions[1].sourceIps: (10.0.0.2, VNI 42) is also claimed by sessions[0] (tms-00000001, line 3); each (source IP, VNI) pair must map to exactly one session',
      'm.yaml:10: sessions[2].vni: VNI 42 is also claimed by sessions[0] (tms-00000001, line 3) and this session allows any source; list sourceIps on both so each (source IP, VNI) pair must map to exactly one session',
      'm.yaml:10: sessions[2].vni: VNI 42 is also claimed by sessions[1] (tms-00000002, line 6) and this session allows any source; list sourceIps on both so each (source IP, VNI) pair must map to exactly one session',
    ]);
  });

  it('a duplicate key is reported with its line', () => {
    expect(lines(session('    vni: 43\n'))).toEqual(['m.yaml:5: duplicate key in a mapping']);
  });

  it('YAML syntax errors carry their line and stop further checks', () => {
    const text = 'version: 1\nsessions:\n  - id: tms-0123456789abcdef0\n    vni: [1, 2\n  - id: x\n';
    const p = lines(text);
    expect(p.length).toBeGreaterThan(0);
    expect(p[0]).toMatch(/^m\.yaml:5: YAML syntax: /);
    expect(lines('version: 1\nsessions:\n\t- id: x\n')).toEqual(['m.yaml:3: YAML syntax: Tabs are not allowed as indentation']);
    expect(lines('version: 1\nsessions:\n  - id: x\n   vni: 2\n')).toEqual(['m.yaml:4: YAML syntax: Sequence item without - indicator']);
    expect(lines('version: 1\nsessions: []\n---\nversion: 1\n')[0]).toMatch(/^m\.yaml:3: YAML syntax: Source contains multiple documents/);
  });

  it('reports every problem at once, sorted by line', () => {
    const text = `version: 3
sessions:
  - id: tms-bad
    vni: 99999999
    sourceIps: [1.2.3]
    extra: 1
  - id: tms-0123456789abcdef0
    vni: "7"
    expires: tomorrow
`;
    const p = lines(text);
    expect(p.map((l) => l.split(':').slice(0, 3).join(':'))).toEqual([
      'm.yaml:1: version',
      'm.yaml:3: sessions[0].id',
      'm.yaml:4: sessions[0].vni',
      'm.yaml:5: sessions[0].sourceIps[0]',
      'm.yaml:6: sessions[0].extra',
      'm.yaml:8: sessions[1].vni',
      'm.yaml:9: sessions[1].expires',
    ]);
  });

  it('loadManifest throws MG_ERR_MANIFEST_INVALID with the problems, and MG_ERR_MANIFEST_READ for a missing file', () => {
    const dir = tmpDir();
    const f = join(dir, 'bad.yaml');
    writeFileSync(f, 'version: 1\nsessions:\n  - id: tms-1\n    vni: 1\n');
    const e = catchMg(() => loadManifest(f));
    expect(e.code).toBe('MG_ERR_MANIFEST_INVALID');
    expect(e.exitCode).toBe(78);
    expect(e.describe().split('\n').slice(1)).toEqual([`${f}:3: sessions[0].id: must be "tms-" and 8 or 17 lowercase hex digits, got "tms-1"`]);
    const r = catchMg(() => loadManifest(join(dir, 'nope.yaml')));
    expect(r.code).toBe('MG_ERR_MANIFEST_READ');
    expect(r.exitCode).toBe(66);
  });
});

describe('ISO-8601 times', () => {
  it('applies offsets and fractions', () => {
    expect(parseIsoTime('2027-01-01T02:00:00+02:00')).toEqual({ ms: Date.UTC(2027, 0, 1) });
    expect(parseIsoTime('2027-01-01T00:00:00.250Z')).toEqual({ ms: Date.UTC(2027, 0, 1) + 250 });
    expect(parseIsoTime('2024-02-29')).toEqual({ ms: Date.UTC(2024, 1, 29) });
    expect('error' in parseIsoTime('2027-13-01')).toBe(true);
    expect('error' in parseIsoTime('2027-01-01T24:00:00Z')).toBe(true);
  });
});

describe('canonicalIp', () => {
  it('follows RFC 5952', () => {
    expect(canonicalIp('2001:0DB8:0000:0000:0000:0000:0000:0001')).toBe('2001:db8::1');
    expect(canonicalIp('2001:db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1'); // first of two equal runs
    expect(canonicalIp('2001:db8:0:1:1:1:1:1')).toBe('2001:db8:0:1:1:1:1:1'); // a single zero group stays
    expect(canonicalIp('::')).toBe('::');
    expect(canonicalIp('::ffff:0a00:0001')).toBe('::ffff:10.0.0.1');
    expect(canonicalIp('1::2::3')).toBeNull();
    expect(canonicalIp('1:2:3:4:5:6:7:8:9')).toBeNull();
    expect(canonicalIp('172.31.0.238')).toBe('172.31.0.238');
  });

  it('agrees with the WHATWG URL parser on random IPv6 addresses (outside the IPv4-mapped range)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }), fc.boolean(), (groups, zeros) => {
        const g = zeros ? groups.map((x, i) => (i >= 2 && i <= 4 ? 0 : x)) : groups;
        if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return;
        const text = g.map((x) => x.toString(16).toUpperCase().padStart(4, '0')).join(':');
        const ours = canonicalIp(text);
        expect(ours).toBe(new URL(`http://[${text}]/`).hostname.slice(1, -1));
        expect(canonicalIp(ours!)).toBe(ours);
      }),
    );
  });
});

function catchMg(f: () => unknown): MgError {
  try {
    f();
  } catch (e) {
    if (e instanceof MgError) return e;
    throw e;
  }
  throw new Error('expected an MgError');
}
