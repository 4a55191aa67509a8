/**
 * The operator's docs: every relative link and anchor in install.md, runbook.md and operations.md leads
 * somewhere, and install.md skips no step a reader needs: every shell variable its commands use was set
 * by an earlier command of the page (or comes from a file the page says is there).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FINDING_KINDS } from '../../src/detect/finding.js';
import { PROJECT_ROOT } from '../helpers/fixtures.js';

const DOCS = join(PROJECT_ROOT, 'docs');
const read = (f: string) => readFileSync(f, 'utf8');

/** GitHub's heading anchors: lowercase, punctuation other than - and _ dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}
function anchors(file: string): Set<string> {
  const text = read(file).replace(/```[\s\S]*?```/g, '');
  return new Set([...text.matchAll(/^#{1,6}\s+(.+)$/gm)].map((m) => slug(m[1]!)));
}

describe.each(['install.md', 'runbook.md', 'operations.md', 'README.md'])('links in %s', (name) => {
  const file = name === 'README.md' ? join(PROJECT_ROOT, name) : join(DOCS, name);
  it('lead to files and headings that exist', () => {
    const text = read(file).replace(/```[\s\S]*?```/g, '');
    const broken: string[] = [];
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const href = m[1]!;
      if (/^[a-z]+:/.test(href)) continue; // https:, mailto:
      const [path, anchor] = href.split('#') as [string, string | undefined];
      const target = path === '' ? file : resolve(dirname(file), path);
      if (!existsSync(target)) broken.push(`${href}: no such file`);
      else if (anchor !== undefined && target.endsWith('.md') && !anchors(target).has(anchor)) broken.push(`${href}: no such heading`);
    }
    expect(broken).toEqual([]);
  });
});

describe('docs/runbook.md', () => {
  it('has a section for every finding kind', () => {
    const headings = [...read(join(DOCS, 'runbook.md')).matchAll(/^### ([a-z-]+) \(/gm)].map((m) => m[1]);
    expect(headings.sort()).toEqual(Object.keys(FINDING_KINDS).sort());
  });
});

describe('docs/install.md', () => {
  const text = read(join(DOCS, 'install.md'));
  const blocks = [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);

  it('sets every shell variable before a command uses it', () => {
    // Set outside the page's commands, by files the page names: the service's environment file
    // (read with `set -a; . /etc/mirrorguard/mirrorguard.env`).
    const external = new Set(['MIRRORGUARD_OPTS']);
    const defined = new Set<string>(external);
    const missing: string[] = [];
    for (const block of blocks) {
      // A heredoc whose delimiter is quoted is literal text; an unquoted one expands like the command.
      const body = block.replace(/<<'(\w+)'\n[\s\S]*?\n\1\n/g, '\n');
      for (const line of body.split('\n')) {
        const code = line.replace(/(^|\s)#.*$/, '');
        const uses = [...code.matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]!);
        // Left of an assignment's `=` is a definition; its own right side must already be known.
        for (const u of uses) if (!defined.has(u) && !/^[0-9]/.test(u)) missing.push(`${u} in: ${line.trim()}`);
        for (const m of code.matchAll(/(?:^|[\s;(])(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=/g)) defined.add(m[1]!);
        for (const m of code.matchAll(/\bfor\s+([A-Za-z_][A-Za-z0-9_]*)\s+in\b/g)) defined.add(m[1]!);
      }
    }
    expect(missing).toEqual([]);
  });

  // The fleet walk-through (## Fleet mode, up to the next ## heading) uses the fleet template; the rest the single-collector one.
  const fleetStart = text.indexOf('\n## Fleet mode');
  const fleetEnd = text.indexOf('\n## ', fleetStart + 1);
  const sections: [string, string, string[]][] = [
    ['mirrorguard-target.yaml', text.slice(0, fleetStart) + text.slice(fleetEnd), ['TrafficMirrorTargetId', 'ApiUrl', 'InstanceId', 'AdminTokenSecretArn']],
    ['mirrorguard-fleet.yaml', text.slice(fleetStart, fleetEnd), ['TrafficMirrorTargetId', 'EvidenceBucketName']],
  ];
  it.each(sections)('uses only parameters and outputs that %s has', (file, part, expected) => {
    expect(fleetStart).toBeGreaterThan(0);
    const template = read(join(PROJECT_ROOT, 'deploy', 'cloudformation', file));
    const params = new Set([...template.matchAll(/^ {2}([A-Za-z]+):\n {4}Type:/gm)].map((m) => m[1]!));
    const outputs = new Set([...template.slice(template.indexOf('\nOutputs:')).matchAll(/^ {2}([A-Za-z]+):$/gm)].map((m) => m[1]!));
    const usedParams = [...part.matchAll(/\b([A-Z][A-Za-z]+)=(?:\$|"|https|mirrorguard\/)/g)].map((m) => m[1]!).filter((p) => /^[A-Z][a-z]/.test(p));
    expect(usedParams.length).toBeGreaterThan(5);
    for (const p of usedParams) expect(params, `parameter ${p}`).toContain(p);
    const usedOutputs = [...part.matchAll(/\bout ([A-Za-z]+)\)/g)].map((m) => m[1]!);
    expect(usedOutputs).toEqual(expect.arrayContaining(expected));
    for (const o of usedOutputs) expect(outputs, `output ${o}`).toContain(o);
  });
});
