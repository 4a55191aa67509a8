/** docs/operations.md, "The ledger key": both examples run as written, on a real capture recorded in a real ledger. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { MemoryLedgerChain } from '../../src/ledger/chain.js';
import { loadSigningKey } from '../../src/ledger/keys.js';
import { exportJsonl, Ledger } from '../../src/ledger/ledger.js';
import { writeCapture } from '../archive/archive-helpers.js';
import { itNeeds } from '../helpers/needs.js';
import { useTmpDir } from '../helpers/tmp.js';
import { markedScript, runScript } from './doc-blocks.js';

describe('docs/operations.md ledger examples', () => {
  const tmp = useTmpDir('mg-ledger-doc-');
  itNeeds(['bash'], 'keys init makes the key; verify finds the capture in the export signed with it', async () => {
    const made = runScript(markedScript('docs/operations.md', 'ledger-key'), tmp.path);
    expect(made.stderr).toBe('');
    expect(made.status).toBe(0);
    const file = await writeCapture(join(tmp.path, 'capture.pcap'), { packets: 25 });
    const chain = new MemoryLedgerChain();
    const ledger = new Ledger(chain, loadSigningKey(join(tmp.path, 'ledger.key')), 'i-0abc');
    await ledger.appendArchive(file, { bucket: 'mg-evidence-prod', key: 'mirrorguard/x.pcap', versionId: 'v1', etag: '"e"', sha256: file.sha256, s3ChecksumSha256: '', parts: 1, size: file.bytes, retainUntil: null });
    let text = '';
    await exportJsonl(chain, (s) => (text += s));
    writeFileSync(join(tmp.path, 'ledger.jsonl'), text);
    const r = runScript(markedScript('docs/operations.md', 'ledger-verify'), tmp.path);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`capture.pcap: sha256 ${file.sha256} is ledger record 1 (archive, node i-0abc`);
  });
});
