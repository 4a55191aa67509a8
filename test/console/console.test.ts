/**
 * Issue 15 end to end: the console in a real Chromium against a real `serve` with real mirror traffic.
 * Sign in, see the finding for an unauthorized VNI, follow it to the extraction, download, check the
 * file with tshark; markup from CloudTrail shows as text and runs nothing; a wrong token is refused;
 * sign-out clears the token; admins acknowledge and resolve; axe-core finds nothing on any view; a
 * screenshot of every view is left in test-results/console/ (MG_UPDATE_SCREENSHOTS=1: docs/console/).
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { INNER_TCP4_PADDED, INNER_UDP4 } from '../decode/frames.js';
import { createSession, IDS } from '../detect/cloudtrail/events.js';
import { describeNeeds } from '../helpers/needs.js';
import { tsharkFields } from '../helpers/oracles.js';
import { startServe, type ServeHandle } from '../helpers/serve.js';
import { makeTmpDir } from '../helpers/tmp.js';
import { axe, launch, screenshot } from './browser.js';
import { sendMirrored } from './send.js';

const ADMIN = 'console-admin-token-0123456789';
const AUDITOR = 'console-auditor-token-0123456789';
const INGEST = 'console-ingest-token-0123456789';
const AUTHORIZED = { source: '127.0.0.2', vni: 5569041 };
const ROGUE = { source: '127.0.0.3', vni: 777 };
const XSS = '<img src=x onerror=alert(1)>';

describeNeeds(['chromium', 'tshark'], 'console in Chromium against serve', () => {
  const { dir, remove } = makeTmpDir('mg-console-');
  let srv: ServeHandle;
  let base: string;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const dialogs: string[] = [];
  const pageErrors: string[] = [];
  const cspViolations: string[] = [];
  let rogueFindingId = '';
  let ctFindingId = '';
  let stopServe = async () => undefined as unknown;

  const api = async (path: string, init: RequestInit = {}, token = ADMIN) => {
    const r = await fetch(`${base}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.headers ?? {}) } });
    if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
    return r.json() as Promise<Record<string, unknown>>;
  };

  beforeAll(async () => {
    const manifest = join(dir, 'manifest.yaml');
    writeFileSync(manifest, ['version: 1', 'sessions:', '  - id: tms-0123456789abcdef0', `    vni: ${AUTHORIZED.vni}`, `    sourceIps: [${AUTHORIZED.source}]`, '    owner: netops', '    description: web tier', ''].join('\n'));
    const config = join(dir, 'config.yaml');
    writeFileSync(config, ['api:', '  tokens:', `    - { name: alice, role: admin, token: ${ADMIN} }`, `    - { name: bob, role: auditor, token: ${AUDITOR} }`, `    - { name: carol, role: ingest, token: ${INGEST} }`, ''].join('\n'));
    srv = await startServe(['--data-dir', join(dir, 'data'), '--api', '127.0.0.1:0', '--manifest', manifest, '--config', config, '--flush-interval-ms', '100']);
    base = `http://127.0.0.1:${srv.apiPort}`;
    // startServe() kills its processes after each test; this file's tests are steps against one serve,
    // which afterAll stops.
    const kill = srv.proc.kill.bind(srv.proc);
    srv.proc.kill = () => true;
    stopServe = async () => {
      kill('SIGTERM');
      await srv.exited;
    };

    await sendMirrored(srv.udpPort, AUTHORIZED.source, AUTHORIZED.vni, [INNER_UDP4, INNER_TCP4_PADDED, INNER_UDP4]);
    await sendMirrored(srv.udpPort, ROGUE.source, ROGUE.vni, [INNER_UDP4, INNER_TCP4_PADDED, INNER_UDP4, INNER_TCP4_PADDED, INNER_UDP4]);
    for (let i = 0; i < 100 && rogueFindingId === ''; i++) {
      const page = (await api('/v1/findings?kind=unauthorized-vni')) as { items: { id: string; vni: number }[] };
      const f = page.items.find((x) => x.vni === ROGUE.vni);
      if (f) rogueFindingId = f.id;
      else await new Promise((r) => setTimeout(r, 100));
    }
    expect(rogueFindingId).not.toBe('');

    // A rogue mirror session created through the API, by a client whose user agent is markup.
    const rec = createSession({ id: IDS.session2, eni: IDS.eni2, target: IDS.rogueTarget, vni: 4242 }, { time: new Date().toISOString().replace(/\.\d+Z$/, 'Z') });
    rec.userAgent = XSS;
    const ct = (await api('/v1/cloudtrail', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ 'detail-type': 'AWS API Call via CloudTrail', source: 'aws.ec2', detail: rec }) })) as { findings: { id: string; kind: string }[] };
    ctFindingId = ct.findings.find((f) => f.kind === 'mirror-session-created')!.id;

    browser = await launch();
    context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1360, height: 900 } });
    page = await context.newPage();
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
      if (/Content Security Policy|Refused to/i.test(m.text())) cspViolations.push(m.text());
      if (process.env.MG_CONSOLE_DEBUG) console.log('[browser]', m.type(), m.text());
    });
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await stopServe();
    remove();
  });

  const token = () => page.evaluate(() => sessionStorage.getItem('mirrorguard.token'));
  const signIn = async (t: string) => {
    await page.getByLabel('API token').fill(t);
    await page.getByRole('button', { name: 'Sign in' }).click();
  };
  const noAxeViolations = async (view: string) => {
    const v = await axe(page);
    expect(v, `${view}: ${JSON.stringify(v, null, 1)}`).toEqual([]);
  };

  it('refuses a wrong token and keeps nothing', async () => {
    await page.goto(`${base}/`);
    await signIn('not-the-right-token-000000');
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('refused');
    expect(await token()).toBeNull();
    expect(await page.getByRole('link', { name: 'Findings' }).count()).toBe(0);
    expect(page.url()).not.toContain('not-the-right-token');
    // The field has no name and the form posts: a token can never end up in a URL.
    expect(await page.getByLabel('API token').getAttribute('name')).toBeNull();
    await noAxeViolations('sign-in');
    await screenshot(page, 'sign-in');
  }, 30_000);

  it('signs in an auditor, shows the navigation, the overview, and no admin actions', async () => {
    await signIn(AUDITOR);
    for (const name of ['Overview', 'Findings', 'Sessions', 'Captures', 'Extract', 'Audit']) await expect.poll(() => page.getByRole('link', { name, exact: true }).count()).toBe(1);
    expect(await token()).toBe(AUDITOR);
    expect(page.url()).not.toContain(AUDITOR);
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    await page.getByText('Open findings by severity').waitFor();
    await noAxeViolations('overview');
    await screenshot(page, 'overview');
    await page.goto(`${base}/#/findings/${rogueFindingId}`);
    await page.getByRole('heading', { name: 'Finding unauthorized-vni' }).waitFor();
    expect(await page.getByRole('button', { name: 'Resolve' }).count()).toBe(0);
  }, 30_000);

  it('lists the unauthorized VNI finding with its kind and VNI, and follows it to an extraction checked by tshark', async () => {
    await page.getByRole('link', { name: 'Findings', exact: true }).click();
    await page.getByRole('heading', { name: 'Findings' }).waitFor();
    const row = page.getByRole('row').filter({ hasText: 'unauthorized-vni' }).filter({ hasText: String(ROGUE.vni) });
    await row.first().waitFor();
    expect(await row.count()).toBe(1);
    await noAxeViolations('findings');
    await screenshot(page, 'findings');

    // By keyboard: Enter on the link opens the finding, and the focus lands on its heading.
    await row.getByRole('link', { name: 'unauthorized-vni' }).focus();
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Finding unauthorized-vni' }).waitFor();
    await expect.poll(() => page.evaluate(() => document.activeElement?.tagName)).toBe('H1');
    expect(await page.getByText(ROGUE.source).count()).toBeGreaterThan(0);
    await noAxeViolations('finding');
    await screenshot(page, 'finding');

    await page.getByRole('link', { name: 'Extract the packets of this window' }).click();
    await page.getByRole('heading', { name: 'Extract' }).waitFor();
    expect(await page.getByLabel('or VNI').inputValue()).toBe(String(ROGUE.vni));
    expect(await page.getByLabel('Source IP (optional)').inputValue()).toBe(ROGUE.source);
    expect(page.url()).toContain(`vni=${ROGUE.vni}`);

    // The filter is checked as it is typed; the error position is underlined.
    const filter = page.getByLabel('Capture filter (optional)');
    await filter.fill('udp and prot 17');
    await page.locator('#filter-check mark').waitFor();
    expect(await page.locator('#filter-check mark').textContent()).toBe('prot');
    expect(await page.locator('#filter-check').textContent()).toContain('Error at position 9');
    expect(await filter.getAttribute('aria-invalid')).toBe('true');
    await screenshot(page, 'extract-filter-error');
    await filter.fill('udp or tcp');
    await page.getByText('Valid:').waitFor();
    await noAxeViolations('extract');

    const downloading = page.waitForEvent('download');
    await page.getByRole('button', { name: 'Extract and download' }).click();
    const dl = await downloading;
    const file = join(dir, 'extracted.pcap');
    await dl.saveAs(file);
    expect(dl.suggestedFilename()).toMatch(/^mirrorguard-vni-777-127\.0\.0\.3-.*\.pcap$/);
    await page.locator('#download-audit-id').waitFor();
    const sha = createHash('sha256').update(readFileSync(file)).digest('hex');
    expect(await page.locator('#download-sha256').textContent()).toBe(sha);
    await page.getByText('matches the file in your browser').waitFor();
    const auditId = Number(await page.locator('#download-audit-id').textContent());
    const row2 = (await api(`/v1/audit/${auditId}`)) as { actor: string; action: string; sha256: string };
    expect(row2).toMatchObject({ actor: 'bob', action: 'pcap.extract', sha256: sha });
    // tshark reads the file: the five packets the rogue source sent, nothing of the authorized one.
    const pkts = tsharkFields(file, ['ip.src', 'ip.dst']);
    expect(pkts).toHaveLength(5);
    await screenshot(page, 'extract');
  }, 60_000);

  it('shows CloudTrail markup as text and runs nothing', async () => {
    await page.goto(`${base}/#/findings/${ctFindingId}`);
    await page.getByRole('heading', { name: 'Finding mirror-session-created' }).waitFor();
    await page.getByText(XSS, { exact: true }).first().waitFor();
    expect(await page.locator('main img').count()).toBe(0);
    expect(await page.evaluate(() => document.querySelectorAll('img[src="x"], [onerror]').length)).toBe(0);
    await new Promise((r) => setTimeout(r, 300));
    expect(dialogs).toEqual([]);
    await noAxeViolations('cloudtrail finding');
    await screenshot(page, 'finding-cloudtrail');
  }, 30_000);

  it('shows sessions side by side with badges, and captures with a Download link that works', async () => {
    await page.getByRole('link', { name: 'Sessions', exact: true }).click();
    await page.getByRole('heading', { name: 'Sessions' }).waitFor();
    await page.locator('.badge', { hasText: 'authorized' }).first().waitFor();
    expect(await page.locator('.badge.st-unauthorized').count()).toBeGreaterThan(0);
    await noAxeViolations('sessions');
    await screenshot(page, 'sessions');

    await page.getByRole('link', { name: 'Captures', exact: true }).click();
    await page.getByRole('heading', { name: 'Captures' }).waitFor();
    const row = page.getByRole('row').filter({ hasText: ROGUE.source });
    await row.first().waitFor();
    await noAxeViolations('captures');
    await screenshot(page, 'captures');
    const downloading = page.waitForEvent('download');
    await row.first().getByRole('link', { name: 'Download' }).click();
    const dl = await downloading;
    const file = join(dir, 'capture.pcap');
    await dl.saveAs(file);
    expect(tsharkFields(file, ['frame.number']).length).toBeGreaterThan(0);
    await page.locator('#download-audit-id').waitFor();

    await page.getByRole('link', { name: 'Audit', exact: true }).click();
    await page.getByRole('heading', { name: 'Audit' }).waitFor();
    await page.getByRole('cell', { name: 'pcap.extract' }).first().waitFor();
    await page.getByRole('cell', { name: 'capture.download' }).first().waitFor();
    await noAxeViolations('audit');
    await screenshot(page, 'audit');
  }, 60_000);

  it('signs out and forgets the token', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API token').waitFor();
    expect(await token()).toBeNull();
    await page.reload();
    await page.getByLabel('API token').waitFor();
    expect(await page.getByRole('link', { name: 'Findings' }).count()).toBe(0);
    // An ingest token sees only its own audit entries.
    await signIn(INGEST);
    await page.getByRole('heading', { name: 'Audit' }).waitFor();
    expect(await page.locator('#nav a').allTextContents()).toEqual(['Audit']);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API token').waitFor();
    expect(await token()).toBeNull();
  }, 30_000);

  it('lets an admin acknowledge and resolve with a note, audited', async () => {
    await page.goto(`${base}/#/findings/${rogueFindingId}`);
    await signIn(ADMIN);
    await page.getByRole('heading', { name: 'Finding unauthorized-vni' }).waitFor();
    await page.getByLabel('Note (kept with the finding and in the audit log)').fill('isolating the ENI <b>now</b>');
    await page.getByRole('button', { name: 'Acknowledge' }).click();
    await page.getByText('by alice: isolating the ENI <b>now</b>').waitFor();
    await noAxeViolations('finding (admin)');
    await screenshot(page, 'finding-admin');
    await page.getByLabel('Note (kept with the finding and in the audit log)').fill('ENI isolated');
    await page.getByRole('button', { name: 'Resolve' }).click();
    await page.getByText('by alice: ENI isolated').waitFor();
    const f = (await api(`/v1/findings/${rogueFindingId}`)) as { status: string };
    expect(f.status).toBe('resolved');
    const audit = (await api('/v1/audit?action=finding.resolve')) as { items: { actor: string; detail: { note: string } }[] };
    expect(audit.items[0]).toMatchObject({ actor: 'alice', detail: { note: 'ENI isolated' } });
    expect(pageErrors).toEqual([]);
    expect(dialogs).toEqual([]);
    // The console itself never trips its own CSP (no inline script or style, nothing from elsewhere).
    expect(cspViolations).toEqual([]);
  }, 30_000);
});
