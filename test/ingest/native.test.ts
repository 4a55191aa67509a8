/**
 * The native receiver (native/src/receiver.cc + src/ingest/native.ts) against real UDP traffic on
 * loopback: what reaches the sink (bytes, sources, kernel timestamps), batching after a pause,
 * pause/resume/close, SO_REUSEPORT, truncation and the kernel drop counter. Needs the addon built (the
 * `native` need: a compiler at install); the fallback's own behaviour is tested at the end whether or not it is.
 */
import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { readKernelUdpStats } from '../../src/ingest/proc-net-udp.js';
import { nativeCounters, startNativeReceiver, type NativeBoundReceiver } from '../../src/ingest/native.js';
import { nativePlannedCopy } from '../../src/ingest/native-addon.js';
import type { PacketSink } from '../../src/ingest/sink.js';
import { silentLogger } from '../../src/util/log.js';
import { describeNeeds, itNeeds } from '../helpers/needs.js';
import { ether, ipv4, tcp, udp } from '../helpers/packets.js';
import { sendVxlanRaw } from '../helpers/send-vxlan.js';

interface Got {
  family: 4 | 6;
  src: string;
  bytes: Buffer;
  sec: number;
  nsec: number;
}

/** Copies what it is given (a test may allocate; the receiver must not). */
class RecordingSink implements PacketSink {
  readonly got: Got[] = [];
  ingest4(buf: Uint8Array, off: number, end: number, src4: number, sec: number, nsec: number): void {
    const ip = `${src4 >>> 24}.${(src4 >>> 16) & 255}.${(src4 >>> 8) & 255}.${src4 & 255}`;
    this.got.push({ family: 4, src: ip, bytes: Buffer.from(buf.subarray(off, end)), sec, nsec });
  }
  ingest6(buf: Uint8Array, off: number, end: number, src6: Uint8Array, src6Off: number, sec: number, nsec: number): void {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(((src6[src6Off + i]! << 8) | src6[src6Off + i + 1]!).toString(16));
    this.got.push({ family: 6, src: groups.join(':'), bytes: Buffer.from(buf.subarray(off, end)), sec, nsec });
  }
}

const logger = silentLogger();
const open: NativeBoundReceiver[] = [];
const clients: Socket[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(open.splice(0).map((r) => r.close()));
});

async function start(sink: PacketSink, opts: Partial<Parameters<typeof startNativeReceiver>[1]> = {}): Promise<NativeBoundReceiver> {
  const r = await startNativeReceiver(sink, { host: '127.0.0.1', port: 0, recvBufferBytes: 4 * 1024 * 1024, logger, ...opts });
  open.push(r);
  return r;
}

function client(type: 'udp4' | 'udp6' = 'udp4'): Socket {
  const c = createSocket(type);
  clients.push(c);
  return c;
}

function send(c: Socket, port: number, host: string, payload: Buffer): Promise<void> {
  return new Promise((resolve, reject) => c.send(payload, port, host, (err) => (err ? reject(err) : resolve())));
}

async function waitFor(pred: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
describeNeeds(['native'], 'native receiver', () => {
  it('the planned copy: one run() carries out every entry of the plan, in order, and skips out-of-bounds ones', () => {
    const pc = nativePlannedCopy()!;
    const src = Buffer.from(Array.from({ length: 600 }, (_, i) => i & 0xff));
    const other = Buffer.from('not a batch buffer');
    const a = Buffer.alloc(400);
    const b = Buffer.alloc(300);
    pc.addSource(src);
    const ia = pc.bufferId(a);
    const ib = pc.bufferId(b);
    expect(pc.copy(ia, 10, src, 0, 200)).toBe(true);
    expect(pc.copy(ib, 0, src, 300, 300)).toBe(true);
    expect(pc.copy(ia, 250, src, 100, 150)).toBe(true); // to the last byte of a
    expect(pc.copy(ib, 200, src, 500, 101)).toBe(true); // one byte past the end of src: skipped
    expect(pc.copy(ia, 0, other, 0, 5)).toBe(false); // not a registered source: the caller copies
    expect(pc.pending).toBe(4);
    expect(a.subarray(10, 210).equals(Buffer.alloc(200))).toBe(true); // nothing copied before flush()
    pc.flush();
    expect(pc.pending).toBe(0);
    expect(a.subarray(10, 210).equals(src.subarray(0, 200))).toBe(true);
    expect(a.subarray(250, 400).equals(src.subarray(100, 250))).toBe(true);
    expect(b.subarray(0, 300).equals(src.subarray(300, 600))).toBe(true);
    expect(pc.skipped).toBe(1);
    // A buffer the pool lets go is forgotten; its id is reused by the next one.
    pc.forget(a);
    expect(pc.bufferId(Buffer.alloc(8))).toBe(ia);
  });

  it('the planned copy: buffers cut from a registered region are addressed through it, from the region start', () => {
    const pc = nativePlannedCopy()!;
    const src = Buffer.from(Array.from({ length: 600 }, (_, i) => (i * 7) & 0xff));
    pc.addSource(src);
    const region = new ArrayBuffer(8192);
    pc.addRegion(region);
    const a = Buffer.from(region, 1024, 1024);
    const b = Buffer.from(region, 4096, 2048);
    const own = Buffer.alloc(256); // not from the region: registered alone, offsets from its own start
    expect(pc.bufferId(a)).toBe(pc.bufferId(b));
    expect(pc.bufferId(own)).not.toBe(pc.bufferId(a));
    expect([pc.baseOf(a), pc.baseOf(b), pc.baseOf(own)]).toEqual([1024, 4096, 0]);
    expect(pc.copy(pc.bufferId(a), pc.baseOf(a) + 16, src, 0, 300)).toBe(true);
    expect(pc.copy(pc.bufferId(b), pc.baseOf(b) + 2048 - 200, src, 400, 200)).toBe(true); // to b's last byte
    expect(pc.copy(pc.bufferId(own), pc.baseOf(own) + 56, src, 100, 200)).toBe(true);
    expect(pc.copy(pc.bufferId(b), 8192 - 10, src, 0, 11)).toBe(true); // one byte past the region: skipped
    pc.flush();
    expect(pc.skipped).toBe(1);
    expect(a.subarray(16, 316).equals(src.subarray(0, 300))).toBe(true);
    expect(b.subarray(1848, 2048).equals(src.subarray(400, 600))).toBe(true);
    expect(own.subarray(56, 256).equals(src.subarray(100, 300))).toBe(true);
    // Around the copies, nothing else in the region was written.
    const all = new Uint8Array(region);
    expect(all.subarray(0, 1040).every((x) => x === 0) && all.subarray(1340, 5944).every((x) => x === 0)).toBe(true);
    // Forgetting a region buffer carries out what was planned into it, and leaves the region registered.
    expect(pc.copy(pc.bufferId(a), pc.baseOf(a), src, 300, 200)).toBe(true);
    pc.forget(a);
    expect(pc.pending).toBe(0);
    expect(a.subarray(0, 200).equals(src.subarray(300, 500))).toBe(true);
    expect(pc.copy(pc.bufferId(b), pc.baseOf(b), src, 0, 150)).toBe(true);
    pc.flush();
    expect(b.subarray(0, 150).equals(src.subarray(0, 150))).toBe(true);
  });

  it('binds port 0 and hands every datagram to the sink with its bytes, IPv4 source and a kernel timestamp', async () => {
    const sink = new RecordingSink();
    const r = await start(sink);
    expect(r.kind).toBe('native');
    expect(r.address.port).toBeGreaterThan(0);
    expect(r.kernelTimestamps).toBe(true);
    const c = client();
    const payloads = [Buffer.from('0800000000138800aa', 'hex'), Buffer.alloc(1400, 0x5a), Buffer.alloc(0), Buffer.from('last')];
    const before = Date.now();
    for (const p of payloads) await send(c, r.address.port, '127.0.0.1', p);
    await waitFor(() => sink.got.length === payloads.length, 'four datagrams');
    const after = Date.now();
    expect(sink.got.map((g) => g.bytes.toString('hex'))).toEqual(payloads.map((p) => p.toString('hex')));
    for (const g of sink.got) {
      expect(g.family).toBe(4);
      expect(g.src).toBe('127.0.0.1');
      // SO_TIMESTAMPNS is CLOCK_REALTIME when the kernel queued the datagram: inside the send window.
      const ms = g.sec * 1000 + g.nsec / 1e6;
      expect(ms).toBeGreaterThanOrEqual(before - 5);
      expect(ms).toBeLessThanOrEqual(after + 5);
      expect(g.nsec).toBeLessThan(1e9);
    }
    const st = r.stats();
    expect(st.packets).toBe(4);
    expect(st.unstamped).toBe(0);
    expect(st.truncated).toBe(0);
  });

  it('reports IPv6 sources as their 16 bytes, and IPv4 senders to a dual-stack socket as IPv4', async () => {
    const sink = new RecordingSink();
    const r = await start(sink, { host: '::' });
    await send(client('udp6'), r.address.port, '::1', Buffer.from('six'));
    await send(client('udp4'), r.address.port, '127.0.0.1', Buffer.from('four'));
    await waitFor(() => sink.got.length === 2, 'two datagrams');
    const bySrc = Object.fromEntries(sink.got.map((g) => [g.bytes.toString(), g]));
    expect(bySrc.six!.family).toBe(6);
    expect(bySrc.six!.src).toBe('0:0:0:0:0:0:0:1');
    expect(bySrc.four!.family).toBe(4);
    expect(bySrc.four!.src).toBe('127.0.0.1');
  });

  // A source above 2^31 cannot come from 127.0.0.0/8: the outer packet goes out through a raw socket.
  itNeeds(['root', 'python3'], 'passes outer IPv4 sources above 2^31 unsigned (AWS VPC ranges such as 172.31.0.0/16)', async () => {
    const sink = new RecordingSink();
    const r = await start(sink);
    const sent = sendVxlanRaw(r.address.port, [
      { src: '172.31.0.238', vni: 5569041, inner: ether({}, ipv4({ src: '10.0.0.1', dst: '10.0.0.2' }, tcp({ dport: 443 }))) },
      { src: '10.1.2.3', vni: 7, inner: ether({}, ipv4({}, udp({ dport: 53 }))) },
      { src: '192.168.255.1', vni: 16777215, inner: Buffer.from('02000000000102000000000208004500001c0001000040117ccd7f0000017f000001', 'hex') },
    ]);
    await waitFor(() => sink.got.length === 3, 'three VXLAN datagrams');
    expect(sink.got.map((g) => g.src).sort()).toEqual(['10.1.2.3', '172.31.0.238', '192.168.255.1']);
    for (const g of sink.got) {
      // The sink sees the UDP payload: the VXLAN header, then exactly the inner frame sent.
      expect(g.bytes[0]).toBe(0x08);
      expect(sent).toContain(g.bytes.subarray(8).toString('hex'));
    }
    const vni = (g: Got) => (g.bytes[4]! << 16) | (g.bytes[5]! << 8) | g.bytes[6]!;
    expect(vni(sink.got.find((g) => g.src === '192.168.255.1')!)).toBe(16777215);
  });

  it('queues while paused and drains the backlog in full batches after resume', async () => {
    const sink = new RecordingSink();
    const r = await start(sink, { batch: 32 });
    r.pause();
    const c = client();
    for (let i = 0; i < 100; i++) await send(c, r.address.port, '127.0.0.1', Buffer.from(`p${i}`));
    await sleep(50);
    expect(sink.got).toHaveLength(0);
    expect(readKernelUdpStats(r.address.port)!.rxQueueBytes).toBeGreaterThan(0);
    const before = r.stats().batches;
    r.resume();
    await waitFor(() => sink.got.length === 100, '100 datagrams');
    const st = r.stats();
    // 100 datagrams in batches of 32: 32 + 32 + 32 + 4, in order.
    expect(st.maxBatch).toBe(32);
    expect(st.batches - before).toBe(4);
    expect(sink.got.map((g) => g.bytes.toString())).toEqual(Array.from({ length: 100 }, (_, i) => `p${i}`));
  });

  it('coalesces: after a short batch it waits coalesceMs, and what arrived meanwhile comes in one batch; a user pause in the wait holds', async () => {
    const sink = new RecordingSink();
    // A long wait, so a busy machine's stall cannot end it before the checks inside it.
    const r = await start(sink, { coalesceMs: 300 });
    const c = client();
    await send(c, r.address.port, '127.0.0.1', Buffer.from('first'));
    await waitFor(() => sink.got.length === 1, 'the first datagram');
    const before = r.stats().batches;
    // Inside the wait: queued, not read.
    for (let i = 0; i < 5; i++) await send(c, r.address.port, '127.0.0.1', Buffer.from(`w${i}`));
    await sleep(20);
    expect(sink.got).toHaveLength(1);
    // Then all five in one batch.
    await waitFor(() => sink.got.length === 6, 'the five sent during the wait');
    expect(r.stats().batches - before).toBe(1);
    // A user pause during a wait (the short batch above began one) is not undone when the wait ends.
    r.pause();
    await sleep(350);
    await send(c, r.address.port, '127.0.0.1', Buffer.from('held'));
    await sleep(30);
    expect(sink.got).toHaveLength(6);
    r.resume();
    await waitFor(() => sink.got.length === 7, 'the datagram sent while paused');
    expect(sink.got.map((g) => g.bytes.toString())).toEqual(['first', 'w0', 'w1', 'w2', 'w3', 'w4', 'held']);
  });

  it('coalescing reads a trickle in far fewer calls than reading at every readiness (coalesceMs 0)', async () => {
    const run = async (coalesceMs: number): Promise<number> => {
      const sink = new RecordingSink();
      const r = await start(sink, { coalesceMs });
      const c = client();
      const before = r.stats().batches;
      // One datagram per turn of the event loop: a reader that reads at every readiness gets one or two a call.
      for (let i = 0; i < 300; i++) {
        await send(c, r.address.port, '127.0.0.1', Buffer.from(`t${i}`));
        await new Promise((done) => setImmediate(done));
      }
      await waitFor(() => sink.got.length === 300, '300 datagrams');
      expect(sink.got.map((g) => g.bytes.toString())).toEqual(Array.from({ length: 300 }, (_, i) => `t${i}`));
      return r.stats().batches - before;
    };
    const eager = await run(0);
    const coalesced = await run(1);
    expect(eager).toBeGreaterThan(100);
    expect(coalesced * 3).toBeLessThan(eager);
  });

  it('backpressure: stops reading while the pipeline is backlogged, and the kernel buffer holds the rest', async () => {
    const sink = new RecordingSink();
    let blocked = true;
    const r = await start(sink, { batch: 4, backlogged: () => blocked });
    r.pause();
    const c = client();
    for (let i = 0; i < 10; i++) await send(c, r.address.port, '127.0.0.1', Buffer.from(`b${i}`));
    r.resume();
    await waitFor(() => sink.got.length === 4, 'the first batch');
    await sleep(50);
    expect(sink.got).toHaveLength(4);
    expect(r.stats().backpressurePauses).toBe(1);
    expect(nativeCounters(r.stats())['ingest.native.backpressure_pauses']).toBe(1);
    // A user pause during backpressure wins: room in the pipeline does not resume reading.
    r.pause();
    blocked = false;
    await sleep(30);
    expect(sink.got).toHaveLength(4);
    r.resume();
    await waitFor(() => sink.got.length === 10, 'the rest');
    expect(sink.got.map((g) => g.bytes.toString())).toEqual(Array.from({ length: 10 }, (_, i) => `b${i}`));
  });

  it('close() releases the socket: the port can be bound again and nothing more is delivered', async () => {
    const sink = new RecordingSink();
    const r = await start(sink);
    const port = r.address.port;
    await r.close();
    await r.close(); // idempotent
    expect(r.stats().closed).toBe(true);
    const again = await start(sink, { port });
    expect(again.address.port).toBe(port);
    await send(client(), port, '127.0.0.1', Buffer.from('to the new one'));
    await waitFor(() => sink.got.length === 1, 'one datagram');
    expect(r.stats().packets).toBe(0);
    expect(again.stats().packets).toBe(1);
  });

  it('an address in use is MG_ERR_INGEST_BIND; with reusePort two receivers share the port', async () => {
    const a = new RecordingSink();
    const b = new RecordingSink();
    const first = await start(a);
    await expect(start(b, { port: first.address.port })).rejects.toMatchObject({ code: 'MG_ERR_INGEST_BIND' });

    const r1 = await start(a, { reusePort: true });
    const r2 = await start(b, { reusePort: true, port: r1.address.port });
    expect(r2.address.port).toBe(r1.address.port);
    // The kernel spreads datagrams by a hash of the 4-tuple: 40 source ports reach both.
    for (let i = 0; i < 40; i++) await send(client(), r1.address.port, '127.0.0.1', Buffer.from(`f${i}`));
    await waitFor(() => a.got.length + b.got.length === 40, '40 datagrams across both');
    expect(a.got.length).toBeGreaterThan(0);
    expect(b.got.length).toBeGreaterThan(0);
    expect([...a.got, ...b.got].map((g) => g.bytes.toString()).sort()).toEqual(Array.from({ length: 40 }, (_, i) => `f${i}`).sort());
  });

  it('counts a datagram longer than a slot as truncated and does not pass it on', async () => {
    const sink = new RecordingSink();
    const r = await start(sink, { slotBytes: 64 });
    const c = client();
    await send(c, r.address.port, '127.0.0.1', Buffer.alloc(65, 1));
    await send(c, r.address.port, '127.0.0.1', Buffer.alloc(64, 2));
    await waitFor(() => r.stats().packets === 2, 'two datagrams');
    expect(r.stats().truncated).toBe(1);
    expect(sink.got).toHaveLength(1);
    expect(sink.got[0]!.bytes).toEqual(Buffer.alloc(64, 2));
  });

  it("reports the kernel's drop counter (SO_RXQ_OVFL) when the receive buffer overflowed while paused", async () => {
    const sink = new RecordingSink();
    // A tiny buffer (the kernel raises it to its minimum) overflows after a few datagrams.
    const r = await start(sink, { recvBufferBytes: 1 });
    r.pause();
    const c = client();
    for (let i = 0; i < 200; i++) await send(c, r.address.port, '127.0.0.1', Buffer.alloc(1000, i));
    const kernel = readKernelUdpStats(r.address.port)!;
    expect(kernel.drops).toBeGreaterThan(0);
    r.resume();
    await waitFor(() => sink.got.length > 0, 'the datagrams that fit');
    await sleep(20);
    expect(sink.got.length + kernel.drops).toBe(200);
    // The counter rides on each datagram read after the drops happened: send one more.
    await send(c, r.address.port, '127.0.0.1', Buffer.from('after'));
    await waitFor(() => sink.got.some((g) => g.bytes.toString() === 'after'), 'the last datagram');
    expect(r.stats().kernelDrops).toBe(kernel.drops);
  });

  it('asks SO_RCVBUF (then SO_RCVBUFFORCE) and reports what the kernel granted', async () => {
    const r = await start(new RecordingSink(), { recvBufferBytes: 8 * 1024 * 1024 });
    // getsockopt reports twice the usable size (socket(7)); capped at rmem_max unless forced.
    if (r.recvBufferForced) expect(r.recvBufferBytes).toBe(16 * 1024 * 1024);
    else expect(r.recvBufferBytes).toBeGreaterThan(0);
  });

  it('refuses out-of-range options with MG_ERR_CONFIG_INVALID', async () => {
    await expect(start(new RecordingSink(), { batch: 0 })).rejects.toMatchObject({ code: 'MG_ERR_CONFIG_INVALID' });
    await expect(start(new RecordingSink(), { batch: 5000 })).rejects.toMatchObject({ code: 'MG_ERR_CONFIG_INVALID' });
    await expect(start(new RecordingSink(), { slotBytes: 10 })).rejects.toMatchObject({ code: 'MG_ERR_CONFIG_INVALID' });
    await expect(start(new RecordingSink(), { coalesceMs: -1 })).rejects.toMatchObject({ code: 'MG_ERR_CONFIG_INVALID' });
    await expect(start(new RecordingSink(), { coalesceMs: 0.5 })).rejects.toMatchObject({ code: 'MG_ERR_CONFIG_INVALID' });
  });
});

describe('without the addon', () => {
  it('nativeAvailable() says why, and startNativeReceiver() throws MG_ERR_INGEST_NATIVE_UNAVAILABLE', async () => {
    const saved = process.env.MIRRORGUARD_NATIVE_ADDON;
    process.env.MIRRORGUARD_NATIVE_ADDON = '/nonexistent/mirrorguard_native.node';
    vi.resetModules();
    try {
      const m = await import('../../src/ingest/native.js');
      const a = m.nativeAvailable();
      expect(a.ok).toBe(false);
      if (!a.ok) expect(a.reason).toMatch(/not built|needs Linux/);
      await expect(m.startNativeReceiver(new RecordingSink(), { host: '127.0.0.1', port: 0, recvBufferBytes: 0, logger })).rejects.toMatchObject({
        code: 'MG_ERR_INGEST_NATIVE_UNAVAILABLE',
      });
    } finally {
      if (saved === undefined) delete process.env.MIRRORGUARD_NATIVE_ADDON;
      else process.env.MIRRORGUARD_NATIVE_ADDON = saved;
      vi.resetModules();
    }
  });
});
