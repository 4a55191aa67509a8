/**
 * docs/manifest.md: the entries `manifest init` leaves commented out become entries by uncommenting
 * them (issue 17: the header said `sessions: []`, so uncommenting gave a YAML error).
 */
import { describe, expect, it } from 'vitest';
import { renderManifest } from '../../src/detect/manifest-init.js';
import { checkManifestText } from '../../src/detect/manifest.js';

const shared = (id: string, eni: string) => ({ id, vni: 77, eni, targetId: 'tmt-0aaaabbbbccccdddd', filterId: 'tmf-0aaaabbbbccccdddd', tags: {} });

describe('manifest init output, edited as docs/manifest.md says', () => {
  it('every entry commented out: the file passes check, and uncommenting (with sourceIps) gives a valid manifest', () => {
    const { text, included } = renderManifest([shared('tms-0a1b2c3d4e5f60718', 'eni-0123456789abcdef0'), shared('tms-0f9e8d7c6b5a40312', 'eni-0fedcba9876543210')], { source: 'test', generatedAt: 0 });
    expect(included).toBe(0);
    expect(checkManifestText(text, 'm.yaml')).toMatchObject({ problems: [], manifest: { sessions: [] } });
    let ip = 0;
    const edited = text
      .split('\n')
      .filter((l) => !l.startsWith('  # NOT INCLUDED'))
      .map((l) => (l.startsWith('  # ') ? `  ${l.slice(4)}` : l))
      .map((l) => (l.includes('# sourceIps: [?]') ? `    sourceIps: [10.0.0.${++ip}]` : l))
      .join('\n');
    const r = checkManifestText(edited, 'm.yaml');
    expect(r.problems).toEqual([]);
    expect(r.manifest?.sessions.map((s) => s.id)).toEqual(['tms-0a1b2c3d4e5f60718', 'tms-0f9e8d7c6b5a40312']);
  });

  it('`sessions:` with no entries authorizes nothing, like `sessions: []`', () => {
    expect(checkManifestText('version: 1\nsessions:\n  # - id: tms-0a1b2c3d4e5f60718\n', 'm.yaml')).toMatchObject({ problems: [], manifest: { sessions: [] } });
  });
});
