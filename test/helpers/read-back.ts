/**
 * Our own reader (src/pcap/reader.ts) over a capture file: what every test can check without tshark.
 * tshark stays the independent oracle in the tests that declare it (test/helpers/needs.ts).
 */
import { openCapture } from '../../src/pcap/reader.js';

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
