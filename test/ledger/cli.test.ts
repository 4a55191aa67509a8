/**
 * `mirrorguard keys init` and `mirrorguard verify` as a user runs them (the real CLI, child processes):
 * a key pair on disk with the right modes, a real PCAP from our writer recorded in a ledger signed with
 * that key, verified offline; a one-byte change to the file, a record or a signature fails with exit 1
 * naming what failed.
 */
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryLedgerChain } from '../../src/ledger/chain.js';
import { loadSigningKey } from '../../src/ledger/keys.js';
import { exportJsonl, Ledger } from '../../src/ledger/ledger.js';
import { recordLine, type LedgerRecord } from '../../src/ledger/record.js';
import { writeCapture } from '../archive/archive-helpers.js';
import { checkIfHave } from '../helpers/needs.js';
import { runCli } from '../helpers/serve.js';
import { useTmpDir } from '../helpers/tmp.js';

describe('keys init and verify (CLI)', () => {
  const tmp = useTmpDir('mg-ledger-cli-');

  it('keys init writes an Ed25519 key pair: private 0600, public 0644; never over existing files without --force', () => {
    const priv = join(tmp.path, 'ledger.key');
    const r = runCli(['keys', 'init', '--private-key', priv]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const pub = join(tmp.path, 'ledger.pub');
    expect(r.stdout).toMatch(new RegExp(`private key: ${priv} \\(mode 0600; set archive.signingKey to it\\)\\npublic key:  ${pub}\\nkey id:      [0-9a-f]{16}\\n`));
    expect(statSync(priv).mode & 0o777).toBe(0o600);
    expect(statSync(pub).mode & 0o777).toBe(0o644);
    expect(readFileSync(priv, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(readFileSync(pub, 'utf8')).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    // openssl agrees: an ED25519 key whose public half is the public file.
    checkIfHave('openssl', () => {
      const o = spawnSync('openssl', ['pkey', '-in', priv, '-pubout'], { encoding: 'utf8' });
      expect(o.stdout).toBe(readFileSync(pub, 'utf8'));
      expect(spawnSync('openssl', ['pkey', '-in', priv, '-noout', '-text'], { encoding: 'utf8' }).stdout).toMatch(/ED25519 Private-Key/);
    });
    const before = readFileSync(priv, 'utf8');
    const again = runCli(['keys', 'init', '--private-key', priv]);
    expect(again.status).toBe(73);
    expect(again.stderr).toBe(`mirrorguard: MG_ERR_KEY_EXISTS: refusing to overwrite an existing key file: ${priv}; pass --force to replace it\n`);
    expect(readFileSync(priv, 'utf8')).toBe(before);
    const forced = runCli(['keys', 'init', '--private-key', priv, '--force']);
    expect(forced.status).toBe(0);
    expect(readFileSync(priv, 'utf8')).not.toBe(before);
    expect(statSync(priv).mode & 0o777).toBe(0o600);
    expect(runCli(['keys', 'init', '--private-key', join(tmp.path, 'no', 'such', 'dir.key')]).stderr).toContain('MG_ERR_KEY_WRITE');
    expect(runCli(['keys']).status).toBe(64);
  });

  it('verify: exit 0 for a recorded PCAP; exit 1 naming what failed after a one-byte change to the file, a record or a signature', async () => {
    const priv = join(tmp.path, 'k.key');
    const pub = join(tmp.path, 'k.pub');
    expect(runCli(['keys', 'init', '--private-key', priv, '--public-key', pub]).status).toBe(0);
    const key = loadSigningKey(priv);
    const chain = new MemoryLedgerChain();
    const ledger = new Ledger(chain, key, 'i-0abc');
    const files = [];
    for (let i = 1; i <= 3; i++) {
      const f = await writeCapture(join(tmp.path, `cap-${i}.pcap`), { packets: 20 * i, captureId: i });
      files.push(f);
      await ledger.appendArchive(f, { bucket: 'evidence', key: `mg/k${i}`, versionId: `v${i}`, etag: '"x"', sha256: f.sha256, s3ChecksumSha256: '', parts: 1, size: f.bytes, retainUntil: null });
    }
    let text = '';
    await exportJsonl(chain, (s) => (text += s));
    const exp = join(tmp.path, 'ledger.jsonl');
    writeFileSync(exp, text);

    const ok = runCli(['verify', files[1]!.path, '--ledger', exp, '--public-key', pub]);
    expect(ok.stderr).toBe('');
    expect(ok.status).toBe(0);
    expect(ok.stdout).toContain(`${files[1]!.path}: sha256 ${files[1]!.sha256} is ledger record 2 (archive, node i-0abc, `);
    expect(ok.stdout).toContain('s3://evidence/mg/k2 version v2');
    expect(ok.stdout).toMatch(/ledger: 3 records, chain unbroken, every signature valid \(key [0-9a-f]{16}\)\n$/);
    // The private key file works as --public-key too (its public half).
    expect(runCli(['verify', files[0]!.path, '--ledger', exp, '--public-key', priv]).status).toBe(0);

    // One byte of the capture changed.
    const bytes = readFileSync(files[1]!.path);
    bytes[bytes.length - 5] ^= 0x20;
    const changed = join(tmp.path, 'changed.pcap');
    writeFileSync(changed, bytes);
    const badFile = runCli(['verify', changed, '--ledger', exp, '--public-key', pub]);
    expect(badFile.status).toBe(1);
    expect(badFile.stderr).toMatch(/^mirrorguard: MG_ERR_VERIFY_FAILED: verification failed: .*changed\.pcap against .*ledger\.jsonl \(3 records, key [0-9a-f]{16}\)\n/);
    expect(badFile.stderr).toContain(`ledger.jsonl: the file's SHA-256 `);
    expect(badFile.stderr).toContain('is in no ledger record');

    // One byte of a record changed (the packet count of record 1 in its time field's neighbour: size).
    const lines = text.split('\n');
    const rec1 = lines[0]!;
    const sizeAt = rec1.indexOf(`"size":${files[0]!.bytes}`) + '"size":'.length;
    const tampered = `${rec1.slice(0, sizeAt)}${rec1[sizeAt] === '9' ? '8' : '9'}${rec1.slice(sizeAt + 1)}`;
    writeFileSync(exp, [tampered, ...lines.slice(1)].join('\n'));
    const badRec = runCli(['verify', files[1]!.path, '--ledger', exp, '--public-key', pub]);
    expect(badRec.status).toBe(1);
    expect(badRec.stderr).toContain('ledger.jsonl: line 1 (seq 1): record hash does not match its contents (the record was changed)');

    // One byte of a signature changed, re-encoded canonically so only the signature check can catch it.
    const r3 = JSON.parse(lines[2]!) as LedgerRecord;
    const sig = Buffer.from(r3.sig, 'base64');
    sig[0] ^= 0x80;
    writeFileSync(exp, [...lines.slice(0, 2), recordLine({ ...r3, sig: sig.toString('base64') }), ''].join('\n'));
    const badSig = runCli(['verify', files[1]!.path, '--ledger', exp, '--public-key', pub]);
    expect(badSig.status).toBe(1);
    expect(badSig.stderr.split('\n').filter((l) => l.includes('line '))).toEqual([`${exp}: line 3 (seq 3): signature does not verify`]);
  });

  it('verify refuses what it cannot read, with the right codes', () => {
    const priv = join(tmp.path, 'k.key');
    expect(runCli(['keys', 'init', '--private-key', priv]).status).toBe(0);
    const exp = join(tmp.path, 'e.jsonl');
    writeFileSync(exp, '');
    const rsa = join(tmp.path, 'rsa.pem');
    writeFileSync(rsa, generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }) as string);
    const cases: [string[], number, string][] = [
      [['verify', priv, '--ledger', exp], 64, "verify: missing --public-key KEY.pub; see 'mirrorguard verify --help'"],
      [['verify', '--ledger', exp, '--public-key', priv], 64, 'verify: missing FILE'],
      [['verify', priv, '--ledger', join(tmp.path, 'none.jsonl'), '--public-key', priv], 66, 'MG_ERR_LEDGER_READ'],
      [['verify', priv, '--ledger', exp, '--public-key', join(tmp.path, 'none.pub')], 66, 'MG_ERR_KEY_READ'],
      [['verify', priv, '--ledger', exp, '--public-key', rsa], 66, 'MG_ERR_KEY_READ: cannot read the Ed25519 key: ' + rsa + ': a rsa key; the ledger is signed with Ed25519'],
      [['verify', join(tmp.path, 'none.pcap'), '--ledger', exp, '--public-key', priv], 66, 'MG_ERR_CAPTURE_READ'],
      [['verify', priv, '--ledger', exp, '--public-key', priv], 1, 'the ledger export is empty'],
    ];
    for (const [args, status, msg] of cases) {
      const r = runCli(args);
      expect([args.join(' '), r.status]).toEqual([args.join(' '), status]);
      expect(r.stderr).toContain(msg);
    }
  });
});
