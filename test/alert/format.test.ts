import { describe, expect, it } from 'vitest';
import { MAX_STANDARD_BODY_BYTES, renderStandard, renderStandardTest } from '../../src/alert/format-standard.js';
import { renderSlackMessage, slackEscape } from '../../src/alert/format-slack.js';
import { actorOf, consoleExtractUrl, consoleFindingUrl, pcapUrl } from '../../src/alert/links.js';
import { event, finding } from './helpers.js';

const ctx = { publicBaseUrl: 'https://mirrorguard.example.com', pcapMarginSeconds: 60 };
const at = Date.parse('2026-03-01T10:00:06.000Z');

describe('standard payload', () => {
  it('is {type, timestamp, data: finding, links}', () => {
    const f = finding();
    const body = JSON.parse(renderStandard(event('finding.created', f, at), ctx)) as Record<string, unknown>;
    expect(body).toEqual({
      type: 'finding.created',
      timestamp: '2026-03-01T10:00:06.000Z',
      data: f,
      links: {
        pcap: 'https://mirrorguard.example.com/v1/pcap?session=tms-0a1b2c3d4e5f60718&from=2026-03-01T09%3A59%3A00.000Z&to=2026-03-01T10%3A01%3A05.000Z',
        finding: `https://mirrorguard.example.com/v1/findings/${f.id}`,
        console: `https://mirrorguard.example.com/#/findings/${f.id}`,
        consoleExtract: 'https://mirrorguard.example.com/#/extract?session=tms-0a1b2c3d4e5f60718&from=2026-03-01T09%3A59%3A00.000Z&to=2026-03-01T10%3A01%3A05.000Z',
      },
    });
    // No base URL: no links at all.
    expect(JSON.parse(renderStandard(event('finding.created', f, at), { pcapMarginSeconds: 60 }))).not.toHaveProperty('links');
  });

  it('cuts a huge finding down to its headline fields', () => {
    const f = finding({ evidence: { record: 'x'.repeat(MAX_STANDARD_BODY_BYTES) } });
    const s = renderStandard(event('finding.updated', f, at), ctx);
    expect(Buffer.byteLength(s)).toBeLessThan(MAX_STANDARD_BODY_BYTES);
    const body = JSON.parse(s) as { data: Record<string, unknown> };
    expect(body.data).toMatchObject({ id: f.id, kind: f.kind, severity: f.severity, count: f.count, evidence: {}, truncated: true });
  });

  it('has a test event', () => {
    expect(JSON.parse(renderStandardTest(at, { message: 'hi', host: 'h', version: '1.0.0' }))).toEqual({
      type: 'webhook.test',
      timestamp: '2026-03-01T10:00:06.000Z',
      data: { message: 'hi', host: 'h', version: '1.0.0' },
    });
  });
});

describe('PCAP links and actors', () => {
  it('link by session, else by (VNI, source IP), else none', () => {
    expect(pcapUrl(finding({ sessionId: 'tms-1' }), ctx)).toMatch(/\/v1\/pcap\?session=tms-1&from=/);
    const noSession = finding({ sessionId: undefined });
    const u = new URL(pcapUrl(noSession, ctx)!);
    expect(Object.fromEntries(u.searchParams)).toEqual({ vni: '5569041', sourceIp: '172.31.0.238', from: '2026-03-01T09:59:00.000Z', to: '2026-03-01T10:01:05.000Z' });
    // A control-plane finding borrows the pair from correlated traffic.
    const control = finding({ sessionId: undefined, vni: undefined, sourceIp: undefined, correlated: { traffic: [{ sourceIp: '10.1.2.3', vni: 77, firstSeen: '2026-03-01T10:00:00Z' }] } });
    expect(new URL(pcapUrl(control, ctx)!).searchParams.get('sourceIp')).toBe('10.1.2.3');
    expect(pcapUrl(finding({ sessionId: undefined, vni: undefined, sourceIp: undefined }), ctx)).toBeUndefined();
    expect(pcapUrl(finding(), { pcapMarginSeconds: 0 })).toBeUndefined();
  });

  it('takes the actor from correlated CloudTrail first, then the evidence', () => {
    const arn = 'arn:aws:sts::123456789012:assumed-role/intruder/session';
    expect(actorOf(finding({ correlated: { control: [{ eventId: 'e', eventName: 'CreateTrafficMirrorSession', eventTime: '2026-03-01T09:59:00Z', actorArn: arn }] }, evidence: { actorArn: 'other' } }))).toBe(arn);
    expect(actorOf(finding({ evidence: { actorArn: arn } }))).toBe(arn);
    expect(actorOf(finding({ evidence: { userIdentity: { arn } } }))).toBe(arn);
    expect(actorOf(finding())).toBeUndefined();
  });
});

describe('slack message', () => {
  it('names the top sources of a session-flood instead of a session, a source and a VNI', () => {
    const { vni: _v, sourceIp: _s, sessionId: _i, ...rest } = finding();
    const f = { ...rest, kind: 'session-flood' as const, count: 5000, summary: 'Flood of new unauthorized pairs', evidence: { topSources: [{ sourceIp: '10.9.9.9', newPairs: 4990 }, { sourceIp: '10.1.1.1', newPairs: 10 }, 'junk'] } };
    const m = renderSlackMessage(event('finding.created', f, at), ctx);
    const fields = (m.blocks[2] as { fields: { text: string }[] }).fields.map((x) => x.text);
    expect(fields).toContain('*Top sources*\n`10.9.9.9` 4990\n`10.1.1.1` 10');
    expect(fields.some((t) => t.startsWith('*VNI*'))).toBe(false);
    expect(m.text).toContain('on top source 10.9.9.9');
  });

  const arn = 'arn:aws:iam::123456789012:user/mallory';
  const f = finding({
    summary: 'Mirror session <tms-1> & friends',
    correlated: { control: [{ eventId: 'e1', eventName: 'CreateTrafficMirrorSession', eventTime: '2026-03-01T09:59:00Z', actorArn: arn }] },
  });

  it('shows severity, kind, session, source IP, VNI, actor and a PCAP button', () => {
    const m = renderSlackMessage(event('finding.created', f, at), ctx);
    const [header, summary, facts, actions, context] = m.blocks as Record<string, any>[];
    expect(header).toEqual({ type: 'header', text: { type: 'plain_text', text: ':rotating_light: CRITICAL: unauthorized-vni', emoji: true } });
    expect(summary!.text.text).toBe('Mirror session &lt;tms-1&gt; &amp; friends');
    const fields = (facts!.fields as { type: string; text: string }[]).map((x) => x.text);
    expect(fields).toEqual([
      '*Severity*\ncritical',
      '*Kind*\nunauthorized-vni',
      '*Session*\n`tms-0a1b2c3d4e5f60718`',
      '*Source IP*\n`172.31.0.238`',
      '*VNI*\n`5569041`',
      `*Actor*\n\`${arn}\``,
      '*Seen*\n1 time',
      '*First seen*\n2026-03-01T10:00:00.000Z',
      '*Last seen*\n2026-03-01T10:00:05.000Z',
    ]);
    expect(fields.length).toBeLessThanOrEqual(10); // Block Kit limit
    expect(actions!.elements[0]).toMatchObject({ type: 'button', url: consoleFindingUrl(f, ctx) });
    expect(actions!.elements[1]).toMatchObject({ type: 'button', url: consoleExtractUrl(f, ctx) });
    expect(consoleExtractUrl(f, ctx)!.split('?')[1]).toBe(pcapUrl(f, ctx)!.split('?')[1]);
    expect(context!.type).toBe('context');
    // The notification line names what, where and who.
    expect(m.text).toBe(`:rotating_light: CRITICAL: unauthorized-vni on tms-0a1b2c3d4e5f60718: Mirror session &lt;tms-1&gt; &amp; friends (actor ${arn})`);
  });

  it('marks updates and resolutions, and leaves out the button without a base URL', () => {
    const upd = renderSlackMessage(event('finding.updated', { ...f, count: 7 }, at), { pcapMarginSeconds: 60 });
    expect((upd.blocks[0] as any).text.text).toBe(':rotating_light: CRITICAL: unauthorized-vni (seen 7 times)');
    expect(upd.blocks.map((b) => b.type)).toEqual(['header', 'section', 'section', 'context']);
    const res = renderSlackMessage(event('finding.resolved', { ...f, status: 'resolved' }, at), ctx);
    expect((res.blocks[0] as any).text.text).toBe(':white_check_mark: Resolved: unauthorized-vni');
  });

  it('keeps within Block Kit limits for long values', () => {
    const m = renderSlackMessage(event('finding.created', finding({ summary: 'y'.repeat(5000), sessionId: 's'.repeat(3000) }), at), ctx);
    expect((m.blocks[1] as any).text.text.length).toBeLessThanOrEqual(3000);
    for (const fl of (m.blocks[2] as any).fields) expect(fl.text.length).toBeLessThanOrEqual(2000);
    expect(m.text.length).toBeLessThanOrEqual(3000);
    expect(slackEscape('a<b>&c')).toBe('a&lt;b&gt;&amp;c');
  });
});
