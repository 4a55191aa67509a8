import { createSocket } from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { parseProcNetUdp, readKernelUdpStats } from '../../src/ingest/proc-net-udp.js';

// Two sockets as the kernel prints them (Linux net/ipv4/udp.c udp4_format_sock): the second is bound to
// port 4789 (0x12B5) with 0x300 bytes queued and 17 drops.
const SAMPLE = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  123: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 21840 2 0000000000000000 0
  456: 00000000:12B5 00000000:0000 07 00000000:00000300 00:00000000 00000000     0        0 99999 2 0000000000000000 17
`;

describe('kernel UDP drop counter', () => {
  it('sums drops and queued bytes of sockets on the port', () => {
    expect(parseProcNetUdp(SAMPLE, 4789)).toEqual({ sockets: 1, drops: 17, rxQueueBytes: 0x300 });
    expect(parseProcNetUdp(SAMPLE, 53)).toEqual({ sockets: 1, drops: 0, rxQueueBytes: 0 });
    expect(parseProcNetUdp(SAMPLE, 9)).toEqual({ sockets: 0, drops: 0, rxQueueBytes: 0 });
  });

  it('finds a live socket of ours in /proc/net/udp', async () => {
    const s = createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    try {
      const st = readKernelUdpStats(s.address().port);
      expect(st).not.toBeNull();
      expect(st!.sockets).toBe(1);
      expect(st!.drops).toBe(0);
    } finally {
      s.close();
    }
  });
});
