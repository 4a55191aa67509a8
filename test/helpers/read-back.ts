/**
 * Our own reader (src/pcap/reader.ts) over a capture file: what every test can check without tshark.
 * tshark stays the independent oracle in the tests that declare it (test/helpers/needs.ts).
 */
import { expect } from 'vitest';
import { openCapture } from '../../src/pcap/reader.js';
import { checkIfHave } from './needs.js';
import { tsharkFrameHex, tsharkReadsCleanly } from './oracles.js';

export interface ReadBack {
  /** Captured bytes of each frame, in hex. */
  frames: string[];
  /** `caplen/origLen` of each frame. */
  lens: string[];
  /** `sec.nnnnnnnnn` of each frame. */
  times: string[];
  /** The file ended inside a record. */
  truncated: boolean;
}

export function readBack(file: string): ReadBack {
  const rd = openCapture(file);
  const out: ReadBack = { frames: [], lens: [], times: [], truncated: false };
  try {
    while (rd.next()) {
      const x = rd.record;
      out.frames.push(x.buf.subarray(x.off, x.off + x.caplen).toString('hex'));
      out.lens.push(`${x.caplen}/${x.origLen}`);
      out.times.push(`${x.tsSec}.${String(x.tsNsec).padStart(9, '0')}`);
    }
    out.truncated = rd.truncated;
  } finally {
    rd.close();
  }
  return out;
}

/**
 * The file parses to its end and holds `packets` frames: by our reader always, and by tshark too where
 * it is installed (checkIfHave: a failure under CI=true without it, a mark in the summary elsewhere).
 */
export function expectReadable(file: string, packets: number): void {
  const own = readBack(file);
  expect({ file, truncated: own.truncated, packets: own.frames.length }).toEqual({ file, truncated: false, packets });
  checkIfHave('tshark', () => expect(tsharkReadsCleanly(file)).toMatchObject({ ok: true, packets }));
}

/** The file holds exactly these frames (hex), by our reader and, where installed, by tshark. */
export function expectFrames(file: string, frames: string[]): void {
  expect(readBack(file).frames).toEqual(frames);
  checkIfHave('tshark', () => expect(tsharkFrameHex(file)).toEqual(frames));
}
