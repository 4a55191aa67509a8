/**
 * The capture ring's walk allocates nothing per packet (src/ingest/ring.ts onBlock, with the call per
 * block from native/src/ring.cc): 100,000 packets from another process through a ring into a sink that
 * only reads numbers, with the young generation measured around them as test/decode/allocation.test.ts
 * does. One object per packet would be at least 1.6 MB; the bound is 1 MiB.
 */
import { spawn } from 'node:child_process';
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startRingReceiver } from '../../src/ingest/ring.js';
import type { PacketSink } from '../../src/ingest/sink.js';
import { silentLogger } from '../../src/util/log.js';
import { describeNeeds } from '../helpers/needs.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
let minorGcs = 0;
const observer = new PerformanceObserver((list) => {
  for (const e of list.getEntries() as (PerformanceEntry & { detail?: { kind?: number } })[]) {
    if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) minorGcs++;
  }
});
const newSpaceUsed = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.space_used_size;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Another process sends `n` 120-byte datagrams from 127.31.8.1 to the port, in bursts, and exits. */
function sendFromChild(port: number, n: number): Promise<void> {
  const script = `
    const s = require('node:dgram').createSocket('udp4');
    s.bind({ address: '127.31.8.1', port: 0 }, async () => {
      const b = Buffer.alloc(120, 7);
      for (let i = 0; i < ${n}; i++) {
        await new Promise((r) => s.send(b, ${port}, '127.0.0.1', r));
        if (i % 200 === 199) await new Promise((r) => setTimeout(r, 1));
      }
      s.close();
    });`;
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`sender exited ${code}`))));
  });
}

describeNeeds(['native', 'root'], 'capture ring allocation', () => {
  beforeAll(() => observer.observe({ entryTypes: ['gc'] }));
  afterAll(() => observer.disconnect());

  it('walking blocks into a sink allocates nothing per packet', async () => {
    let count = 0;
    let acc = 0;
    const sink: PacketSink = {
      ingest4(buf, off, end, src4, sec, nsec) {
        count++;
        acc = (acc + buf[off]! + end + src4 + sec + nsec) | 0;
      },
      ingest6() {},
    };
    const rx = await startRingReceiver(sink, null, { host: '127.0.0.1', port: 0, logger: silentLogger() });
    try {
      await sendFromChild(rx.address.port, 20_000); // warm: optimized, inline caches filled
      while (count < 20_000) await sleep(20);
      gc();
      await sleep(20);
      minorGcs = 0;
      const before = newSpaceUsed();
      const sent = sendFromChild(rx.address.port, 100_000);
      await sent;
      while (count < 120_000) await sleep(50);
      const after = newSpaceUsed();
      expect(count).toBe(120_000);
      expect(rx.stats().ringDrops).toBe(0);
      expect(minorGcs, `young generation grew ${after - before} bytes`).toBe(0);
      expect(after - before).toBeLessThan(1024 * 1024);
      expect(acc).not.toBe(0.5); // keep acc alive
    } finally {
      await rx.close();
    }
  }, 60_000);
});
