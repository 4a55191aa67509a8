/**
 * The capture ring in process (src/ingest/ring.ts over native/src/ring.cc), behind a counting sink: the
 * payloads arrive byte-equal at their offsets in the ring with kernel timestamps in nanoseconds; while the
 * writer is backlogged the ring holds its blocks (nothing walked, nothing lost) and walks them once it
 * has room, a few blocks per turn of the event loop; a burst past a held tiny ring is counted as ring
 * drops, and walked + drops = sent.
 */
import { createSocket, type Socket } from 'node:dgram';
import { afterEach, expect, it } from 'vitest';
import { DEFAULTS } from '../../src/config/schema.js';
import { RING_DEFAULTS, startRingReceiver, type RingBoundReceiver } from '../../src/ingest/ring.js';
import type { PacketSink } from '../../src/ingest/sink.js';
import { silentLogger } from '../../src/util/log.js';
import { describeNeeds } from '../helpers/needs.js';

const receivers: RingBoundReceiver[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.close();
  await Promise.all(receivers.splice(0).map((r) => r.close()));
});

/**
 * This file's own loopback address: the rings here filter on it, so traffic other tests send on lo at
 * the same time (test/e2e/ring.test.ts's IP fragments to 127.0.0.1, which no port filter can exclude)
 * never reaches them and the counts below stay exact.
 */
const HOST = '127.43.0.1';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(pred: () => boolean, what: string, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > until) throw new Error(`timed out: ${what}`);
    await sleep(5);
  }
}

function counting() {
  const seen: { payload: string; src4: number; sec: number; nsec: number }[] = [];
  const sink: PacketSink = {
    ingest4(buf, off, end, src4, sec, nsec) {
      seen.push({ payload: Buffer.from(buf.subarray(off, end)).toString('hex'), src4: src4 >>> 0, sec, nsec });
    },
    ingest6() {
      throw new Error('no IPv6 here');
    },
  };
  return { sink, seen };
}

async function sender(src: string): Promise<Socket> {
  const s = createSocket('udp4');
  sockets.push(s);
  await new Promise<void>((r) => s.bind({ address: src, port: 0 }, () => r()));
  return s;
}

async function send(s: Socket, port: number, n: number, from = 0, size = 100): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const b = Buffer.alloc(size, 0x5a);
    b.writeUInt32BE(from + i, 0);
    await new Promise<void>((r, j) => s.send(b, port, HOST, (e) => (e ? j(e) : r())));
    out.push(b.toString('hex'));
    if (i % 64 === 63) await sleep(1);
  }
  return out;
}

it("the receiver's defaults are the config's (a ring started without settings is the one serve maps)", () => {
  expect(RING_DEFAULTS).toEqual(DEFAULTS.ring);
});

describeNeeds(['native', 'root'], 'capture ring receiver', () => {
  it('hands each payload to the sink in place, with the outer source and a nanosecond kernel timestamp', async () => {
    const { sink, seen } = counting();
    const rx = await startRingReceiver(sink, null, { host: HOST, port: 0, logger: silentLogger() });
    receivers.push(rx);
    const s = await sender('127.31.9.1');
    const before = Date.now();
    const sent = await send(s, rx.address.port, 50);
    await waitFor(() => seen.length === 50, '50 packets');
    expect(seen.map((x) => x.payload)).toEqual(sent);
    expect(new Set(seen.map((x) => x.src4))).toEqual(new Set([((127 << 24) | (31 << 16) | (9 << 8) | 1) >>> 0]));
    for (const x of seen) {
      const ms = x.sec * 1000 + x.nsec / 1e6;
      expect(ms).toBeGreaterThanOrEqual(before - 5);
      expect(ms).toBeLessThanOrEqual(Date.now() + 5);
      expect(x.nsec).toBeLessThan(1e9);
    }
    // Nanoseconds, not microseconds scaled: some stamp has digits below the microsecond.
    expect(seen.some((x) => x.nsec % 1000 !== 0)).toBe(true);
    expect(rx.stats()).toMatchObject({ packets: 50, ringDrops: 0, kernelPackets: 50, fragments: 0, malformed: 0 });
  });

  it('holds its blocks while the writer is backlogged and walks them, in order, when it has room', async () => {
    const { sink, seen } = counting();
    let backlogged = true;
    const rx = await startRingReceiver(sink, null, { host: HOST, port: 0, logger: silentLogger(), backlogged: () => backlogged, retireMs: 5 });
    receivers.push(rx);
    const s = await sender('127.31.9.2');
    const first = await send(s, rx.address.port, 20);
    // The first retired block (some or all of the 20) is walked; then the ring holds.
    await waitFor(() => rx.stats().backpressurePauses === 1, 'the first block');
    const walked = seen.length;
    expect(walked).toBeGreaterThan(0);
    const more = await send(s, rx.address.port, 500, 20);
    await sleep(100);
    // Held: in the ring, not walked, not dropped.
    expect(seen.length).toBe(walked);
    const held = rx.stats();
    expect(held.heldBlocks).toBeGreaterThanOrEqual(1);
    expect(held.ringDrops).toBe(0);
    backlogged = false;
    await waitFor(() => seen.length === 520, 'the held blocks');
    expect(seen.map((x) => x.payload)).toEqual([...first, ...more]);
    expect(rx.stats()).toMatchObject({ packets: 520, ringDrops: 0, heldBlocks: 0 });
  });

  it('a long walk of held blocks lets the event loop turn between wake-ups', async () => {
    // Each block costs the sink ~20 ms here (0.3 ms a packet); a wake-up walks blocks for at most 10 ms
    // of main-thread time, then returns and the rest are walked at the next poll, so timers, file
    // creates coming back and the store's writes are not held off for the whole backlog.
    const events: string[] = [];
    const sink: PacketSink = {
      ingest4() {
        const until = process.hrtime.bigint() + 300_000n;
        while (process.hrtime.bigint() < until);
        events.push('p');
      },
      ingest6() {},
    };
    let backlogged = true;
    const rx = await startRingReceiver(sink, null, { host: HOST, port: 0, logger: silentLogger(), backlogged: () => backlogged, blockBytes: 64 * 1024, retireMs: 2 });
    receivers.push(rx);
    const s = await sender('127.31.9.4');
    await send(s, rx.address.port, 1);
    await waitFor(() => rx.stats().backpressurePauses === 1, 'the first block');
    await send(s, rx.address.port, 640, 1);
    await sleep(50);
    expect(rx.stats().heldBlocks).toBeGreaterThanOrEqual(4);
    let done = false;
    const tick = (): void => {
      events.push('t');
      if (!done) setImmediate(tick);
    };
    events.length = 0;
    setImmediate(tick);
    backlogged = false;
    // Every packet walked and every block handed back to the kernel.
    await waitFor(() => rx.stats().packets === 641 && rx.stats().heldBlocks === 0, 'the held blocks', 10_000);
    done = true;
    const first = events.indexOf('p');
    const last = events.lastIndexOf('p');
    const turns = events.slice(first, last).filter((e) => e === 't').length;
    expect(turns).toBeGreaterThanOrEqual(3);
    expect(rx.stats()).toMatchObject({ packets: 641, ringDrops: 0, heldBlocks: 0 });
  });

  it('a burst past a held tiny ring is counted as ring drops: walked + drops = sent', async () => {
    const { sink, seen } = counting();
    let backlogged = true;
    const rx = await startRingReceiver(sink, null, { host: HOST, port: 0, logger: silentLogger(), backlogged: () => backlogged, blockBytes: 64 * 1024, blockCount: 2, retireMs: 2 });
    receivers.push(rx);
    const s = await sender('127.31.9.3');
    await send(s, rx.address.port, 1);
    await waitFor(() => seen.length === 1, 'the first packet');
    await send(s, rx.address.port, 3000, 1, 300);
    await sleep(100);
    backlogged = false;
    await waitFor(() => rx.stats().heldBlocks === 0 && rx.stats().packets + rx.stats().ringDrops === 3001, 'walked + drops = sent', 10_000);
    const st = rx.stats();
    expect(st.ringDrops).toBeGreaterThan(0);
    expect(st.freezes).toBeGreaterThan(0);
    expect(st.kernelPackets).toBe(3001);
    expect(seen.length).toBe(st.packets);
  });

  it('refuses an IPv6 listen address and a block size that is not a power of two, with coded errors', async () => {
    const { sink } = counting();
    await expect(startRingReceiver(sink, null, { host: '::1', port: 0, logger: silentLogger() })).rejects.toMatchObject({ code: 'MG_ERR_CONFIG_INVALID' });
    await expect(startRingReceiver(sink, null, { host: HOST, port: 0, blockBytes: 100_000, logger: silentLogger() })).rejects.toMatchObject({ code: 'MG_ERR_CONFIG_INVALID' });
    await expect(startRingReceiver(sink, null, { host: HOST, port: 0, interface: 'nosuchif0', logger: silentLogger() })).rejects.toMatchObject({ code: 'MG_ERR_INGEST_RING' });
  });
});
