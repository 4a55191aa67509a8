/**
 * /v1/sessions behind a Gateway Load Balancer: each pair shows the GWLB endpoint and attachment its
 * traffic last came through, and an authorized pair arriving through another endpoint than the manifest
 * names says so in its reason and finding.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findingId } from '../../src/detect/finding-id.js';
import { makeTmpDir } from '../helpers/tmp.js';
import { bearer, buildHarness, manifestFrom, type Harness } from './helpers.js';

const NOW = Date.UTC(2026, 11, 3, 10, 0, 0);
const S1 = 'tms-00000000000000001';
const S2 = 'tms-00000000000000002';
const MINE = 'vpce-00a1b2c3d4e5f6071';
const OTHER = 'vpce-0eeeeeeeeeeeeeeee';
const MANIFEST = `version: 1
sessions:
  - id: ${S1}
    vni: 100
    sourceIps: [10.0.0.1]
    gwlbEndpointId: ${MINE}
  - id: ${S2}
    vni: 200
    sourceIps: [10.0.0.2]
    gwlbEndpointId: ${MINE}
`;

interface Row {
  sessionId: string | null;
  sourceIp: string | null;
  status: string;
  reason: string | null;
  findingId: string | null;
  gwlbEndpointId: string | null;
  gwlbAttachmentId: string | null;
}

describe('GET /v1/sessions with GWLB endpoints', () => {
  const { dir, remove } = makeTmpDir('mg-api-sessions-gwlb-');
  let h: Harness;
  beforeAll(async () => {
    h = buildHarness({ dataDir: dir, manifest: manifestFrom(MANIFEST), now: () => NOW });
    const at = NOW - 60_000;
    // What the collector does: the first packet, the endpoint seen, the periodic observe with the ids.
    for (const [ip, vni, endpoint] of [['10.0.0.1', 100, MINE], ['10.0.0.2', 200, OTHER]] as const) {
      const v = h.detector.onNewPair(ip, vni, at);
      await h.detector.onGwlbEndpoint(ip, vni, endpoint, '1122334455667788', at);
      h.catalog.observe(ip, vni, v.sessionId, at, at + 1000, 10, 1000, endpoint, '1122334455667788');
    }
    // A pair that arrives straight over VXLAN: no endpoint, and observing it again keeps none.
    h.detector.onNewPair('10.9.9.9', 999, at);
    h.catalog.observe('10.9.9.9', 999, null, at, at, 1, 100);
  });
  afterAll(async () => {
    await h.close();
    remove();
  });

  it('names the endpoint per pair and flags the pair that arrives through another one', async () => {
    const r = await h.app.inject({ url: '/v1/sessions', headers: bearer('auditor') });
    expect(r.statusCode, r.body).toBe(200);
    const rows = (r.json() as { items: Row[] }).items;
    expect(rows.map((x) => [x.sessionId, x.sourceIp, x.status, x.gwlbEndpointId, x.gwlbAttachmentId])).toEqual([
      [S1, '10.0.0.1', 'authorized', MINE, '1122334455667788'],
      [S2, '10.0.0.2', 'authorized', OTHER, '1122334455667788'],
      [null, '10.9.9.9', 'unauthorized', null, null],
    ]);
    expect(rows[0]).toMatchObject({ reason: null, findingId: null });
    expect(rows[1]).toMatchObject({
      reason: `unexpected-gwlb-endpoint: arrives through ${OTHER}, the manifest says ${MINE}`,
      findingId: findingId('unexpected-gwlb-endpoint', '10.0.0.2|200'),
    });
  });
});
