import { describe, expect, it } from 'vitest';
import {
  compareTs,
  GLOBAL_HEADER_BYTES,
  globalHeader,
  LINKTYPE_ETHERNET,
  PCAP_MAGIC_NSEC,
  RECORD_HEADER_BYTES,
  SNAPLEN,
  writeGlobalHeader,
  writeRecordHeader,
} from '../../src/pcap/format.js';

describe('pcap global header', () => {
  it('writes the 24-byte little-endian nanosecond header byte for byte', () => {
    const b = Buffer.alloc(30, 0xee);
    expect(writeGlobalHeader(b, 3, LINKTYPE_ETHERNET, SNAPLEN)).toBe(27);
    // prettier-ignore
    const expected = Buffer.from([
      0xee, 0xee, 0xee,        // untouched bytes before the offset
      0x4d, 0x3c, 0xb2, 0xa1,  // magic 0xa1b23c4d (nanoseconds), little-endian
      0x02, 0x00,              // version major 2
      0x04, 0x00,              // version minor 4
      0x00, 0x00, 0x00, 0x00,  // thiszone 0 (UTC)
      0x00, 0x00, 0x00, 0x00,  // sigfigs 0
      0x00, 0x00, 0x04, 0x00,  // snaplen 262144 = 0x00040000
      0x01, 0x00, 0x00, 0x00,  // link type 1 (Ethernet), no FCS bits
      0xee, 0xee, 0xee,        // untouched bytes after
    ]);
    expect(b).toEqual(expected);
    expect(GLOBAL_HEADER_BYTES).toBe(24);
    expect(PCAP_MAGIC_NSEC).toBe(0xa1b23c4d);
  });

  it('writes another link type and snap length where asked', () => {
    const h = globalHeader(113, 65535);
    expect([...h.subarray(16)]).toEqual([0xff, 0xff, 0x00, 0x00, 113, 0x00, 0x00, 0x00]);
  });

  it('refuses values that do not fit their field, or a buffer too small', () => {
    expect(writeGlobalHeader(Buffer.alloc(24), 0, 0x10000, SNAPLEN)).toBe(-1);
    expect(writeGlobalHeader(Buffer.alloc(24), 0, 1, 0)).toBe(-1);
    expect(writeGlobalHeader(Buffer.alloc(23), 0, 1, SNAPLEN)).toBe(-1);
    expect(() => globalHeader(-1)).toThrow(RangeError);
  });
});

describe('pcap record header', () => {
  it('writes seconds, nanoseconds, caplen and wire length, little-endian', () => {
    const b = Buffer.alloc(18, 0xee);
    expect(writeRecordHeader(b, 1, 1_700_000_000, 123_456_789, 60, 1514)).toBe(17);
    // prettier-ignore
    expect(b).toEqual(Buffer.from([
      0xee,
      0x00, 0xf1, 0x53, 0x65,  // ts_sec 1700000000 = 0x6553f100
      0x15, 0xcd, 0x5b, 0x07,  // ts_nsec 123456789 = 0x075bcd15
      0x3c, 0x00, 0x00, 0x00,  // caplen 60
      0xea, 0x05, 0x00, 0x00,  // orig_len 1514: the frame was cut to 60 bytes
      0xee,
    ]));
    expect(RECORD_HEADER_BYTES).toBe(16);
  });

  it('accepts the edges of every field', () => {
    const b = Buffer.alloc(16);
    expect(writeRecordHeader(b, 0, 0xffffffff, 999_999_999, SNAPLEN, 0xffffffff)).toBe(16);
    expect(b.readUInt32LE(0)).toBe(0xffffffff);
    expect(b.readUInt32LE(4)).toBe(999_999_999);
    expect(b.readUInt32LE(8)).toBe(SNAPLEN);
    expect(b.readUInt32LE(12)).toBe(0xffffffff);
    expect(writeRecordHeader(b, 0, 0, 0, 0, 1)).toBe(16);
  });

  it('refuses caplen > origLen, caplen > snaplen, an empty wire length and timestamps outside their fields', () => {
    const b = Buffer.alloc(16, 0xaa);
    expect(writeRecordHeader(b, 0, 1, 0, 61, 60)).toBe(-1);
    expect(writeRecordHeader(b, 0, 1, 0, SNAPLEN + 1, SNAPLEN + 1)).toBe(-1);
    expect(writeRecordHeader(b, 0, 1, 0, 1500, 1500, 1000)).toBe(-1);
    expect(writeRecordHeader(b, 0, 1, 0, 0, 0)).toBe(-1);
    expect(writeRecordHeader(b, 0, 1, 1_000_000_000, 10, 10)).toBe(-1);
    expect(writeRecordHeader(b, 0, -1, 0, 10, 10)).toBe(-1);
    expect(writeRecordHeader(b, 0, 2 ** 32, 0, 10, 10)).toBe(-1);
    expect(writeRecordHeader(b, 1, 1, 0, 10, 10)).toBe(-1);
    // A refusal writes nothing.
    expect(b.equals(Buffer.alloc(16, 0xaa))).toBe(true);
  });
});

describe('compareTs', () => {
  it('orders by seconds, then nanoseconds, where nanoseconds since the epoch would lose precision as one number', () => {
    const sec = 1_700_000_000;
    // As a single float, these two collapse into the same number of nanoseconds.
    expect(sec * 1e9 + 1).toBe(sec * 1e9 + 2);
    expect(compareTs(sec, 1, sec, 2)).toBeLessThan(0);
    expect(compareTs(sec, 2, sec, 1)).toBeGreaterThan(0);
    expect(compareTs(sec, 5, sec, 5)).toBe(0);
    expect(compareTs(sec, 999_999_999, sec + 1, 0)).toBeLessThan(0);
  });
});
