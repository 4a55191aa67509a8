/**
 * flatString (src/util/strings.ts): the same string back, whatever it holds, and kept strings that cost
 * their length, not a tree of their parts (the paths a session writer keeps while its file is open).
 */
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { exposeGc } from '../../src/util/heap-trim.js';
import { flatString } from '../../src/util/strings.js';

it('returns an equal string for any UTF-16 content, lone surrogates included', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 300 }), fc.string({ unit: fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)), maxLength: 5 }), (a, lone) => {
      const s = `${a}${lone}/${a}`;
      expect(flatString(s)).toBe(s);
    }),
  );
  expect(flatString('')).toBe('');
  expect(flatString('10.0.0.1')).toBe('10.0.0.1');
});

it('keeps 20,000 capture paths in well under half the memory of the same paths built from their parts', () => {
  const gc = exposeGc();
  expect(gc).not.toBeNull();
  const used = (): number => {
    gc!();
    gc!();
    return process.memoryUsage().heapUsed;
  };
  const dir = '/var/lib/mirrorguard/data';
  // As src/collector/layout.ts and path.join build them: a template literal of many parts.
  const build = (i: number): string => `${dir}/pcap/2026-12-04/${String(i % 24).padStart(2, '0')}/vni-${5000 + i}_10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}_20261204T${i}.123456789Z-w0-${i}.pcap`;
  const measure = (f: (s: string) => string): number => {
    const before = used();
    const kept = Array.from({ length: 20_000 }, (_, i) => f(build(i)));
    const bytes = used() - before;
    expect(kept[19_999]).toBe(build(19_999));
    return bytes;
  };
  const tree = measure((s) => s);
  const flat = measure(flatString);
  // A flat path of ~95 characters is ~112 bytes; its tree is one node per part plus the parts.
  expect(flat / 20_000).toBeLessThan(160);
  expect(flat).toBeLessThan(tree * 0.5);
});
