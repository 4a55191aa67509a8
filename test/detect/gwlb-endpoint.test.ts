/**
 * unexpected-gwlb-endpoint: a manifest session may pin the Gateway Load Balancer endpoint its traffic
 * arrives through (gwlbEndpointId); traffic of that session through another endpoint is a finding.
 */
import { describe, expect, it } from 'vitest';
import { DataPlaneDetector } from '../../src/detect/data-plane.js';
import { formatProblem } from '../../src/errors.js';
import { checkManifestText, type Manifest } from '../../src/detect/manifest.js';
import { findingId } from '../../src/detect/store.js';
import { openDb } from '../../src/store/db.js';
import { Findings } from '../../src/detect/findings.js';
import { storeFromDb } from '../../src/store/store.js';
import { settledReads } from '../helpers/settled.js';

const T0 = Date.UTC(2026, 11, 3, 10);
const MINE = 'vpce-00a1b2c3d4e5f6071';
const OTHER = 'vpce-0eeeeeeeeeeeeeeee';

function manifest(endpoint: string | null): Manifest {
  const text = `version: 1\nsessions:\n  - id: tms-0123456789abcdef0\n    vni: 5569041\n    sourceIps: [172.31.0.238]\n${endpoint ? `    gwlbEndpointId: ${endpoint}\n` : ''}`;
  const r = checkManifestText(text, 'm.yaml');
  if (!r.manifest) throw new Error(JSON.stringify(r.problems));
  return r.manifest;
}

function setup(m: Manifest) {
  const db = openDb(':memory:');
  const findings = new Findings(storeFromDb(db));
  const dp = new DataPlaneDetector({ findings, manifest: m, clock: () => T0 });
  const id = findingId('unexpected-gwlb-endpoint', '172.31.0.238|5569041');
  return { store: settledReads(findings, () => dp.settled()), dp, id };
}

describe('manifest gwlbEndpointId', () => {
  it('is a vpce- id of 8 or 17 hex digits', async () => {
    expect(manifest(MINE).sessions[0]!.gwlbEndpointId).toBe(MINE);
    const r = checkManifestText('version: 1\nsessions:\n  - id: tms-0123456789abcdef0\n    vni: 1\n    gwlbEndpointId: eni-0123\n', 'm.yaml');
    expect(r.problems.map(formatProblem)).toEqual(['m.yaml:5: sessions[0].gwlbEndpointId: must be "vpce-" and 8 or 17 lowercase hex digits, got "eni-0123"']);
  });
});

describe('DataPlaneDetector.onGwlbEndpoint', () => {
  it('raises unexpected-gwlb-endpoint for another endpoint, and resolves when traffic comes through the right one', async () => {
    const { store, dp, id } = setup(manifest(MINE));
    expect((await dp.onGwlbEndpoint('172.31.0.238', 5569041, MINE, '1122334455667788', T0))).toBeNull();
    expect((await store.get(id))).toBeUndefined();
    const f = (await dp.onGwlbEndpoint('172.31.0.238', 5569041, OTHER, '1122334455667788', T0 + 1000))!;
    expect(f).toMatchObject({ kind: 'unexpected-gwlb-endpoint', severity: 'high', status: 'open', sessionId: 'tms-0123456789abcdef0', vni: 5569041, sourceIp: '172.31.0.238' });
    expect(f.summary).toBe(`Traffic of tms-0123456789abcdef0 (VNI 5569041, from 172.31.0.238) arrives through GWLB endpoint ${OTHER}, not ${MINE} as the manifest says`);
    expect(f.evidence).toMatchObject({ gwlbEndpointId: OTHER, gwlbAttachmentId: '1122334455667788', expected: MINE, trigger: 'traffic' });
    await dp.onGwlbEndpoint('172.31.0.238', 5569041, MINE, null, T0 + 2000);
    expect((await store.get(id))!.status).toBe('resolved');
  });

  it('says nothing without gwlbEndpointId, or for a pair no session authorizes', async () => {
    const { store, dp } = setup(manifest(null));
    expect((await dp.onGwlbEndpoint('172.31.0.238', 5569041, OTHER, null, T0))).toBeNull();
    expect((await dp.onGwlbEndpoint('10.9.9.9', 77, OTHER, null, T0))).toBeNull();
    expect((await store.list()).items).toEqual([]);
  });

  it('is evaluated again on a manifest reload', async () => {
    const { store, dp, id } = setup(manifest(null));
    await dp.onGwlbEndpoint('172.31.0.238', 5569041, OTHER, null, T0);
    const pinned = (await dp.setManifest(manifest(MINE), T0 + 1000));
    expect(pinned.raised.map((f) => f.id)).toEqual([id]);
    const fixed = (await dp.setManifest(manifest(OTHER), T0 + 2000));
    expect(fixed.resolved.map((f) => f.id)).toEqual([id]);
    expect((await store.get(id))!.status).toBe('resolved');
  });
});
