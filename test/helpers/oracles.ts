/**
 * Independent implementations we check ourselves against: tshark reads our PCAP files, scapy crafts
 * packets. Both come from Debian (tshark, python3-scapy); .ci/run installs them. Scapy is run with
 * Debian's /usr/bin/python3, which is where python3-scapy installs, whatever python3 is first on PATH.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { have, type Need } from './needs.js';

export const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

export interface TsharkResult {
  status: number;
  stdout: string;
  stderr: string;
}

/**
 * A test that runs an oracle must say so (describeNeeds / itNeeds in test/helpers/needs.ts). Where the
 * oracle is absent, or pretended absent with MIRRORGUARD_TEST_WITHOUT, calling it is an error that names
 * the undeclared need, so a run without the tool finds every test that forgot to declare it.
 */
export function requireOracle(need: Need): void {
  if (!have(need)) throw new Error(`this test needs ${need}, which is absent in this run, but does not declare it: wrap it in itNeeds(['${need}'], ...) or describeNeeds (test/helpers/needs.ts)`);
}

/** Run tshark with the given arguments; never throws, so a test can assert on stderr. */
export function tshark(args: string[]): TsharkResult {
  requireOracle('tshark');
  const r = spawnSync('tshark', args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, env: { ...process.env, LC_ALL: 'C' } });
  return { status: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** tshark -T fields over a file: one array of field values per packet. */
export function tsharkFields(file: string, fields: string[], extra: string[] = []): string[][] {
  const args = ['-r', file, '-n', '-T', 'fields', '-E', 'separator=\t', ...extra];
  for (const f of fields) args.push('-e', f);
  const r = tshark(args);
  if (r.status !== 0) throw new Error(`tshark failed on ${file}: ${r.stderr}`);
  return r.stdout.split('\n').filter((l) => l.length > 0).map((l) => l.split('\t'));
}

/**
 * The raw bytes of every frame, as tshark reads them, in hex. This is the byte-equality oracle: what we
 * wrote, read back by someone else's reader. Ethernet dissection is disabled so tshark prints only the
 * frame itself (no reassembled or decompressed extra data sources).
 */
export function tsharkFrameHex(file: string): string[] {
  const r = tshark(['-r', file, '-n', '-x', '--disable-protocol', 'eth']);
  if (r.status !== 0) throw new Error(`tshark failed on ${file}: ${r.stderr}`);
  const frames: string[] = [];
  let cur = '';
  for (const line of r.stdout.split('\n')) {
    const m = /^[0-9a-f]{4}  ((?:[0-9a-f]{2} )+)/.exec(line);
    if (m) cur += m[1]!.replace(/ /g, '');
    else if (line.trim() === '' && cur) {
      frames.push(cur);
      cur = '';
    }
  }
  if (cur) frames.push(cur);
  return frames;
}

/** Per-frame MD5 of the captured bytes, with wire and captured lengths, as tshark computes them. */
export function tsharkFrameDigests(file: string): { md5: string; len: number; capLen: number }[] {
  return tsharkFields(file, ['frame.md5_hash', 'frame.len', 'frame.cap_len'], ['-o', 'frame.generate_md5_hash:TRUE']).map(
    ([md5, len, capLen]) => ({ md5: md5!, len: Number(len), capLen: Number(capLen) }),
  );
}

/** capinfos-like facts through tshark: packet count, and whether tshark reported any error. */
export function tsharkReadsCleanly(file: string): { ok: boolean; packets: number; stderr: string } {
  const r = tshark(['-r', file, '-n', '-T', 'fields', '-e', 'frame.number']);
  const packets = r.stdout.split('\n').filter((l) => l.trim().length > 0).length;
  // tshark warns when run as root; that line is not about the file.
  const stderr = r.stderr
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('Running as user'))
    .join('\n');
  return { ok: r.status === 0 && stderr === '', packets, stderr };
}

/** Run a Python (scapy) script given as text; returns stdout. Throws with stderr on failure. */
export function scapy(script: string, args: string[] = [], input?: string): string {
  requireOracle('scapy');
  return execFileSync(PYTHON, ['-c', script, ...args], { encoding: 'utf8', input, maxBuffer: 256 * 1024 * 1024, stdio: ['pipe', 'pipe', 'pipe'] });
}
