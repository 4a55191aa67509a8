import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findingId } from '../../src/detect/finding-id.js';
import { describeWithFixtures, fixture } from '../helpers/fixtures.js';
import { makeTmpDir } from '../helpers/tmp.js';
import { bearer, buildHarness, type Harness } from './helpers.js';

const DAY = 86_400_000;
const T0 = Date.UTC(2025, 10, 1);

describe('GET /v1/findings', () => {
  const { dir, remove } = makeTmpDir('mg-api-findings-');
  let h: Harness;
  beforeAll(async () => {
    h = buildHarness({ dataDir: dir });
    const s = h.deps.findings;
    await s.record({ kind: 'unauthorized-vni', key: '10.0.0.1|77', at: T0, vni: 77, sourceIp: '10.0.0.1', summary: 'rogue VNI 77', evidence: { pair: { vni: 77 } } });
    await s.record({ kind: 'silent-session', key: 'tms-0123456789abcdef0', at: T0 + DAY, vni: 5, sessionId: 'tms-0123456789abcdef0', summary: 'quiet', evidence: {} });
    await s.record({ kind: 'mirror-session-created', key: 'tms-0fedcba9876543210', at: T0 + 2 * DAY, sessionId: 'tms-0fedcba9876543210', summary: 'created', evidence: { actorArn: 'arn:aws:iam::1:user/eve' } });
    await s.record({ kind: 'mirror-filter-changed', key: 'tmf-0123456789abcdef0', at: T0 + 3 * DAY, summary: 'filter', evidence: {} });
    await s.resolve(findingId('silent-session', 'tms-0123456789abcdef0'), T0 + 4 * DAY, 'traffic resumed');
  });
  afterAll(async () => {
    await h.close();
    remove();
  });

  const kinds = async (q: string) => {
    const r = await h.app.inject({ url: `/v1/findings${q}`, headers: bearer('auditor') });
    expect(r.statusCode, r.body).toBe(200);
    return (r.json() as { items: { kind: string }[] }).items.map((i) => i.kind);
  };

  it('lists newest first in the Finding shape the webhooks carry', async () => {
    const r = await h.app.inject({ url: '/v1/findings', headers: bearer('auditor') });
    const body = r.json() as { items: Record<string, unknown>[]; nextCursor: null };
    expect(body.items.map((i) => i.kind)).toEqual(['mirror-filter-changed', 'mirror-session-created', 'silent-session', 'unauthorized-vni']);
    expect(body.items[3]).toEqual((await h.deps.findings.get(findingId('unauthorized-vni', '10.0.0.1|77'))));
    expect(body.items[1]!.evidence).toEqual({ actorArn: 'arn:aws:iam::1:user/eve' });
    expect(body.nextCursor).toBeNull();
  });

  it('filters by kind (comma-separated), minimum severity, status, VNI, session and time', async () => {
    expect(await kinds('?kind=unauthorized-vni,silent-session')).toEqual(['silent-session', 'unauthorized-vni']);
    expect(await kinds('?severity=critical')).toEqual(['mirror-session-created', 'unauthorized-vni']);
    expect(await kinds('?severity=medium')).toEqual(['mirror-filter-changed', 'mirror-session-created', 'unauthorized-vni']);
    expect(await kinds('?status=resolved')).toEqual(['silent-session']);
    expect(await kinds('?vni=77')).toEqual(['unauthorized-vni']);
    expect(await kinds('?session=tms-0fedcba9876543210')).toEqual(['mirror-session-created']);
    // Active in the window: last seen at or after from, first seen at or before to.
    expect(await kinds(`?from=${new Date(T0 + DAY).toISOString()}&to=${new Date(T0 + 2 * DAY).toISOString()}`)).toEqual(['mirror-session-created', 'silent-session']);
  });

  it('pages with a cursor', async () => {
    const p1 = (await h.app.inject({ url: '/v1/findings?limit=3', headers: bearer('auditor') })).json() as { items: unknown[]; nextCursor: string };
    expect(p1.items).toHaveLength(3);
    const p2 = (await h.app.inject({ url: `/v1/findings?limit=3&cursor=${p1.nextCursor}`, headers: bearer('auditor') })).json() as { items: { kind: string }[]; nextCursor: null };
    expect(p2.items.map((i) => i.kind)).toEqual(['unauthorized-vni']);
    expect(p2.nextCursor).toBeNull();
  });

  it('GET /v1/findings/:id is the link alert webhooks carry', async () => {
    const id = findingId('mirror-session-created', 'tms-0fedcba9876543210');
    const r = await h.app.inject({ url: `/v1/findings/${id}`, headers: bearer('auditor') });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ id, kind: 'mirror-session-created', severity: 'critical', status: 'open', count: 1, sessionId: 'tms-0fedcba9876543210' });
    const nf = await h.app.inject({ url: '/v1/findings/f_00000000000000000000', headers: bearer('auditor') });
    expect([nf.statusCode, nf.json().code]).toEqual([404, 'MG_ERR_API_NOT_FOUND']);
    const bad = await h.app.inject({ url: '/v1/findings/../../etc', headers: bearer('auditor') });
    expect(bad.statusCode).toBe(404);
    const badId = await h.app.inject({ url: '/v1/findings/abc', headers: bearer('auditor') });
    expect([badId.statusCode, badId.json().code]).toEqual([400, 'MG_ERR_API_BAD_REQUEST']);
    expect(badId.json().message).toContain('id: must match pattern');
  });

  it('answers 400 for an unknown kind (listing the kinds), a bad severity or a bad cursor', async () => {
    const k = await h.app.inject({ url: '/v1/findings?kind=unauthorized-vni,rogue', headers: bearer('auditor') });
    expect([k.statusCode, k.json().code]).toEqual([400, 'MG_ERR_API_BAD_REQUEST']);
    expect(k.json().message).toContain("kind: 'rogue' is not a finding kind; kinds: unauthorized-vni, unexpected-source");
    const s = await h.app.inject({ url: '/v1/findings?severity=urgent', headers: bearer('auditor') });
    expect(s.json().message).toBe('bad request: severity: must be one of info, low, medium, high, critical');
    const c = await h.app.inject({ url: '/v1/findings?cursor=xyz', headers: bearer('auditor') });
    expect([c.statusCode, c.json().message]).toEqual([400, 'bad request: cursor: not a cursor this server returned']);
  });
});

describeWithFixtures('POST /v1/cloudtrail', () => {
  const { dir, remove } = makeTmpDir('mg-api-cloudtrail-');
  let h: Harness;
  beforeAll(async () => {
    h = buildHarness({ dataDir: dir, api: { maxBodyBytes: 64 * 1024 } });
  });
  afterAll(async () => {
    await h.close();
    remove();
  });
  const sample = (name: string) => JSON.parse(readFileSync(fixture('cloudtrail', `panther-aws_ec2_traffic_mirroring-${name}.json`), 'utf8')) as Record<string, unknown>;
  const post = (payload: unknown, headers: Record<string, string> = {}, role: 'ingest' | 'admin' = 'ingest') =>
    h.app.inject({ method: 'POST', url: '/v1/cloudtrail', payload: payload as string, headers: { ...bearer(role), 'content-type': 'application/json', ...headers } });

  it('a real CloudTrail record raises a finding that GET /v1/findings/:id then serves', async () => {
    const record = sample('CreateTrafficMirrorTarget');
    const r = await post(JSON.stringify(record));
    expect(r.statusCode, r.body).toBe(200);
    const body = r.json() as { records: number; events: number; duplicates: number; skipped: number; findings: { id: string; kind: string }[] };
    expect(body).toMatchObject({ records: 1, events: 1, duplicates: 0, skipped: 0 });
    expect(body.findings.map((f) => f.kind)).toEqual(['mirror-target-created']);
    const got = await h.app.inject({ url: `/v1/findings/${body.findings[0]!.id}`, headers: bearer('auditor') });
    expect(got.statusCode).toBe(200);
    expect(got.json()).toMatchObject({ id: body.findings[0]!.id, kind: 'mirror-target-created', status: 'open' });
    const audit = h.db.prepare("SELECT actor, role, status, detail FROM audit_log WHERE action = 'cloudtrail.ingest' ORDER BY id DESC LIMIT 1").get() as { actor: string; role: string; status: number; detail: string };
    expect([audit.actor, audit.role, audit.status]).toEqual(['ingest-user', 'ingest', 200]);
    expect(JSON.parse(audit.detail)).toMatchObject({ events: 1, findings: [body.findings[0]!.id], eventIds: [record.eventID] });
  });

  it('takes the EventBridge event an API destination sends; a redelivery of the same eventID raises nothing new', async () => {
    const record = sample('ModifyTrafficMirrorSession');
    const event = { version: '0', id: 'e1', 'detail-type': 'AWS API Call via CloudTrail', source: 'aws.ec2', account: '123456789012', time: record.eventTime, region: 'us-east-1', resources: [], detail: record };
    const first = (await post(JSON.stringify(event), { 'content-type': 'application/json; charset=utf-8' })).json() as { events: number; duplicates: number; findings: { id: string; kind: string; count: number }[] };
    expect(first.events).toBe(1);
    expect(first.duplicates).toBe(0);
    expect(first.findings.map((f) => f.kind)).toEqual(['mirror-session-modified']);
    const again = (await post(JSON.stringify(event))).json() as { duplicates: number; findings: unknown[] };
    expect(again).toMatchObject({ duplicates: 1, findings: [] });
    expect((await h.deps.findings.get(first.findings[0]!.id))!.count).toBe(1);
  });

  it('takes a Records file and JSON lines; records that are not traffic mirroring are skipped', async () => {
    const all = JSON.parse(readFileSync(fixture('cloudtrail', 'panther-aws_ec2_traffic_mirroring-all-tests.Records.json'), 'utf8')) as { Records: unknown[] };
    const lines = all.Records.map((x) => JSON.stringify(x)).join('\n');
    const r = await post(lines, { 'content-type': 'application/x-ndjson' });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json()).toMatchObject({ records: 9, events: 8, skipped: 1 });
    const unrelated = (await post(JSON.stringify(sample('UnrelatedEvent')))).json();
    expect(unrelated).toMatchObject({ records: 1, events: 0, skipped: 1, findings: [] });
  });

  it('admins may post too', async () => {
    expect((await post(JSON.stringify({ Records: [] }), {}, 'admin')).json()).toMatchObject({ records: 0, events: 0 });
  });

  it('refuses what is not CloudTrail (400), not JSON (400), too large (413) or of another type (415)', async () => {
    const notCt = await post(JSON.stringify({ hello: 'world' }));
    expect([notCt.statusCode, notCt.json().code]).toEqual([400, 'MG_ERR_CLOUDTRAIL_FORMAT']);
    const notJson = await post('{"Records": [');
    expect([notJson.statusCode, notJson.json().code]).toEqual([400, 'MG_ERR_API_BAD_REQUEST']);
    const big = await post(JSON.stringify({ Records: [{ pad: 'x'.repeat(70 * 1024) }] }));
    expect([big.statusCode, big.json().code]).toEqual([413, 'MG_ERR_API_TOO_LARGE']);
    const xml = await post('<Records/>', { 'content-type': 'application/xml' });
    expect([xml.statusCode, xml.json().code]).toEqual([415, 'MG_ERR_API_MEDIA_TYPE']);
    const poisoned = await post('{"__proto__": {"x": 1}, "Records": []}');
    expect(poisoned.statusCode).toBe(400);
  });
});
