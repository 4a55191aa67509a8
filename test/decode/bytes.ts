/**
 * Test helpers for the decoder tests: annotated hex byte arrays and embedding at a non-zero offset
 * (dns-packet style), so every decoder is also checked with junk before and after its input.
 */

/** Bytes from annotated hex: `#` starts a comment to the end of the line; whitespace is ignored. */
export function hex(text: string): Buffer {
  const digits = text
    .split('\n')
    .map((l) => l.replace(/#.*$/, ''))
    .join('')
    .replace(/\s+/g, '');
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(digits)) throw new Error(`bad hex: ${digits}`);
  return Buffer.from(digits, 'hex');
}

export function cat(...parts: Uint8Array[]): Buffer {
  return Buffer.concat(parts);
}

export interface Embedded {
  buf: Buffer;
  off: number;
  end: number;
}

/**
 * Copy `bytes` into a bigger buffer at offset `before`, with junk around it. The junk is 0xff: all
 * flags set, lengths huge, version nibbles 15, so a decoder that reads outside [off, end) shows it.
 */
export function embed(bytes: Uint8Array, before = 37, after = 29): Embedded {
  const buf = Buffer.alloc(before + bytes.length + after, 0xff);
  buf.set(bytes, before);
  return { buf, off: before, end: before + bytes.length };
}

/** A 16-byte IPv6 address from its hex text (no colons), for comparing src6Off/dst6Off. */
export function slice16(buf: Uint8Array, off: number): string {
  return Buffer.from(buf.subarray(off, off + 16)).toString('hex');
}
