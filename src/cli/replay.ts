/**
 * `mirrorguard replay IN --to HOST:PORT [--rate PPS]`: send the VXLAN payloads found in a capture
 * (UDP to the VXLAN port) to a collector, for tests and demos. The kernel gives the datagrams our own
 * source address: replay keeps each frame's VNI and bytes but not its outer source IP, so every session
 * arrives as (this host, VNI). To keep outer sources, craft packets with raw sockets (scapy).
 */
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { DROP, DROP_NAMES } from '../outcomes.js';
import { decodeOuter } from '../decode/outer.js';
import { PacketState } from '../decode/packet-state.js';
import { EXIT } from '../errors.js';
import { openCapture } from '../pcap/reader.js';
import { parseHostPort } from '../util/units.js';
import { commandHelp, parseCommand, usageError, type CommandSpec } from './flags.js';
import { PROCESS_IO, type CliIo } from './io.js';
import { checkHeaderLinktype, LinktypeTally } from './capture-linktype.js';

export const SPEC: CommandSpec = {
  name: 'replay',
  usage: ['replay IN --to HOST:PORT [--rate PPS]'],
  description: 'Send the VXLAN payloads in a capture file to a collector.',
  sections: [
    {
      title: 'options',
      flags: [
        { name: 'to', kind: 'string', arg: 'HOST:PORT', help: 'collector address (required), e.g. 127.0.0.1:4789' },
        { name: 'rate', kind: 'int', min: 1, arg: 'PPS', help: 'packets per second (default: as fast as the socket takes them)' },
        { name: 'loop', kind: 'int', min: 1, arg: 'N', help: 'send the capture N times (default 1)' },
        { name: 'vxlan-port', kind: 'int', min: 1, max: 65535, arg: 'PORT', help: 'VXLAN port in the capture (default 4789)' },
      ],
    },
  ],
  epilogue:
    'exit status: 0 sent (frames that are not VXLAN are skipped and counted); 64 usage; 65 not pcap/pcapng\nor a link type with no IP layer; 66 the capture cannot be read. docs/replay.md has the details.',
};

export async function run(argv: string[], io: CliIo = PROCESS_IO): Promise<number> {
  const flags = parseCommand(argv, SPEC);
  if (flags.help) {
    io.stdout.write(commandHelp(SPEC));
    return EXIT.OK;
  }
  if (flags.positionals.length !== 1) throw usageError(SPEC, 'give exactly one capture file');
  const to = typeof flags.values.to === 'string' ? parseHostPort(flags.values.to, '127.0.0.1') : null;
  if (!to || to.port === 0) throw usageError(SPEC, '--to HOST:PORT is required (e.g. 127.0.0.1:4789)');
  const rate = (flags.values.rate as number | undefined) ?? 0;
  const loops = (flags.values.loop as number | undefined) ?? 1;
  const vxlanPort = (flags.values['vxlan-port'] as number | undefined) ?? 4789;
  const file = flags.positionals[0]!;
  const first = openCapture(file); // fail fast on a bad file or link type
  first.close();
  checkHeaderLinktype(file, first.linktype);

  const sock = createSocket(isIPv6(to.host) ? 'udp6' : 'udp4');
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.connect(to.port, to.host, () => {
      sock.off('error', reject);
      resolve();
    });
  });
  const st = new PacketState();
  const skipped = new Map<string, number>();
  let sent = 0;
  let bytes = 0;
  const started = performance.now();
  const intervalMs = rate > 0 ? 1000 / rate : 0;
  let inFlight = 0;
  for (let l = 0; l < loops; l++) {
    const reader = openCapture(file);
    const tally = new LinktypeTally();
    try {
      while (reader.next()) {
        const r = reader.record;
        tally.add(r.linktype);
        const code = decodeOuter(r.buf, r.off, r.off + r.caplen, r.linktype, st, vxlanPort);
        if (code !== DROP.OK) {
          const name = DROP_NAMES[code]!;
          skipped.set(name, (skipped.get(name) ?? 0) + 1);
          continue;
        }
        // The reader reuses its buffer: send a copy.
        const payload = Buffer.from(r.buf.subarray(st.vxlanOff, st.vxlanEnd));
        inFlight++;
        sock.send(payload, () => inFlight--);
        sent++;
        bytes += payload.length;
        if (intervalMs > 0) {
          const due = started + sent * intervalMs;
          const wait = due - performance.now();
          if (wait > 1) await sleep(wait);
        } else if (inFlight > 512) {
          while (inFlight > 64) await new Promise((r) => setImmediate(r));
        }
      }
    } finally {
      reader.close();
    }
    tally.check(file);
  }
  while (inFlight > 0) await new Promise((r) => setImmediate(r));
  sock.close();
  const secs = (performance.now() - started) / 1000;
  const skippedText = [...skipped].map(([k, v]) => `${k}=${v}`).join(' ');
  io.stdout.write(`sent ${sent} VXLAN datagrams (${bytes} bytes) to ${flags.values.to} in ${secs.toFixed(2)} s${skippedText ? `; skipped ${skippedText}` : ''}\n`);
  return EXIT.OK;
}
