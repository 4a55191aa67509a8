/**
 * Chromium for the console tests: Debian's /usr/bin/chromium driven by playwright-core (no browser
 * download), a fresh profile per launch, and axe-core evaluated in the page for accessibility checks.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { PROJECT_ROOT } from '../helpers/fixtures.js';

const require = createRequire(import.meta.url);

export const CHROMIUM = process.env.MIRRORGUARD_CHROMIUM ?? '/usr/bin/chromium';
/** Where each run leaves its screenshots (test artifacts); MG_UPDATE_SCREENSHOTS=1 also writes docs/console/. */
export const ARTIFACTS = join(PROJECT_ROOT, 'test-results', 'console');
export const DOC_IMAGES = join(PROJECT_ROOT, 'docs', 'console');

export async function launch(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  // launch() (not launchPersistentContext) gives every run a fresh temporary profile.
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
}

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[] }[];
}

/**
 * Run axe-core (WCAG 2.1 A and AA rules) in the page. Its source is evaluated through the DevTools
 * protocol: a <script> tag would be refused by the console's CSP, as it should be.
 */
export async function axe(page: Page): Promise<AxeViolation[]> {
  const src = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
  await page.evaluate(src);
  return page.evaluate(async () => {
    const a = (globalThis as unknown as { axe: { run(ctx: unknown, opts: unknown): Promise<{ violations: AxeViolation[] }> } }).axe;
    const r = await a.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target })) }));
  });
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const file = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  if (process.env.MG_UPDATE_SCREENSHOTS === '1') {
    mkdirSync(DOC_IMAGES, { recursive: true });
    await page.screenshot({ path: join(DOC_IMAGES, `${name}.png`), fullPage: true });
  }
  return file;
}
