import { describe, expect, it } from 'vitest';
import { buildIndex } from '../../src/detect/authorize.js';
import { checkManifestText } from '../../src/detect/manifest.js';

const manifest = checkManifestText(
  `version: 1
sessions:
  - id: tms-00000001
    vni: 42
    sourceIps: [10.0.0.1, 10.0.0.2]
  - id: tms-00000002
    vni: 42
    sourceIps: [10.0.0.3]
  - id: tms-00000003
    vni: 7
  - id: tms-00000004
    vni: 9
    sourceIps: [2001:db8::10]
    expires: 2026-01-01T00:00:00Z
`,
  'm.yaml',
).manifest!;

const BEFORE = Date.UTC(2025, 5, 1);
const AFTER = Date.UTC(2026, 5, 1);

describe('authorize', () => {
  const idx = buildIndex(manifest);

  it('maps a VNI repeated across sessions to the session by source IP', () => {
    expect(idx.authorize('10.0.0.1', 42, BEFORE)).toMatchObject({ status: 'authorized', session: { id: 'tms-00000001' } });
    expect(idx.authorize('10.0.0.2', 42, BEFORE).session?.id).toBe('tms-00000001');
    expect(idx.authorize('10.0.0.3', 42, BEFORE).session?.id).toBe('tms-00000002');
  });

  it('reports an unlisted source on a claimed VNI as unexpected-source', () => {
    const r = idx.authorize('10.9.9.9', 42, BEFORE);
    expect(r.status).toBe('unexpected-source');
    // Two sessions claim VNI 42: none is singled out.
    expect(r.session).toBeUndefined();
    expect(idx.sessionsForVni(42).map((s) => s.id)).toEqual(['tms-00000001', 'tms-00000002']);
    // One session claims VNI 9: it is the one the source is unexpected for.
    expect(idx.authorize('2001:db8::11', 9, BEFORE)).toMatchObject({ status: 'unexpected-source', session: { id: 'tms-00000004' } });
  });

  it('lets any source through on a session without sourceIps', () => {
    expect(idx.authorize('192.0.2.1', 7, BEFORE)).toMatchObject({ status: 'authorized', session: { id: 'tms-00000003' } });
    expect(idx.authorize('2001:db8::99', 7, BEFORE).status).toBe('authorized');
  });

  it('reports a VNI nobody claims as unauthorized-vni', () => {
    expect(idx.authorize('10.0.0.1', 43, BEFORE)).toEqual({ status: 'unauthorized-vni' });
  });

  it('reports traffic at or after expires as expired', () => {
    expect(idx.authorize('2001:db8::10', 9, BEFORE).status).toBe('authorized');
    expect(idx.authorize('2001:db8::10', 9, Date.UTC(2026, 0, 1))).toMatchObject({ status: 'expired', session: { id: 'tms-00000004' } });
    expect(idx.authorize('2001:db8::10', 9, AFTER).status).toBe('expired');
  });

  it('matches IPv6 in any text form the collector may use', () => {
    expect(idx.authorize('2001:DB8:0:0:0:0:0:10', 9, BEFORE).status).toBe('authorized');
    expect(idx.authorize('2001:0db8::0010', 9, BEFORE).status).toBe('authorized');
  });

  it('returns the same result object every time (no allocation per call)', () => {
    expect(idx.authorize('10.0.0.1', 42, BEFORE)).toBe(idx.authorize('10.0.0.1', 42, BEFORE));
    expect(idx.authorize('10.9.9.9', 42, BEFORE)).toBe(idx.authorize('10.9.9.8', 42, BEFORE));
  });

  it('with no manifest, every pair is unauthorized-vni', () => {
    const none = buildIndex(null);
    expect(none.authorize('10.0.0.1', 42, BEFORE).status).toBe('unauthorized-vni');
    expect(none.sessions).toEqual([]);
  });
});
