/**
 * `mirrorguard replay IN --to HOST:PORT [--geneve-to HOST:PORT] [--rate PPS]`: send the VXLAN payloads
 * found in a capture (UDP to the VXLAN port) to a collector, and with --geneve-to the GENEVE payloads (UDP
 * to the GENEVE port: what a Gateway Load Balancer delivers) to its GENEVE socket, for tests and demos. The kernel gives the datagrams our own
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
  usage: ['replay IN --to HOST:PORT [--geneve-to HOST:PORT] [--rate PPS]'],
  description: 'Send the VXLAN (and GENEVE) payloads in a capture file to a collector.',
  sections: [
    {
      title: 'options',
      flags: [
        { name: 'to', kind: 'string', arg: 'HOST:PORT', help: "collector's VXLAN address, e.g. 127.0.0.1:4789 (this or --geneve-to is required)" },
        { name: 'geneve-to', kind: 'string', arg: 'HOST:PORT', help: "collector's GENEVE address (serve --geneve), e.g. 127.0.0.1:6081: GENEVE datagrams in the capture go there" },
        { name: 'rate', kind: 'int', min: 1, arg: 'PPS', help: 'packets per second (default: as fast as the socket takes them)' },
        { name: 'loop', kind: 'int', min: 1, arg: 'N', help: 'send the capture N times (default 1)' },
        { name: 'vxlan-port', kind: 'int', min: 1, max: 65535, arg: 'PORT', help: 'VXLAN port in the capture (default 4789)' },
        { name: 'geneve-port', kind: 'int', min: 1, max: 65535, arg: 'PORT', help: 'GENEVE port in the capture (default 6081)' },
      ],
    },
  ],
  epilogue:
    'exit status: 0 sent (frames that are not VXLAN, or GENEVE with --geneve-to, are skipped and counted); 64 usage; 65 not pcap/pcapng\nor a link type with no IP layer; 66 the capture cannot be read. docs/replay.md has the details.',
};

export async function run(argv: string[], io: CliIo = PROCESS_IO): Promise<number> {
  const flags = parseCommand(argv, SPEC);
  if (flags.help) {
    io.stdout.write(commandHelp(SPEC));
    return EXIT.OK;
  }
  if (flags.positionals.length !== 1) throw usageError(SPEC, 'give exactly one capture file');
  const to = typeof flags.values.to === 'string' ? parseHostPort(flags.values.to, '127.0.0.1') : null;
  const gTo = typeof flags.values['geneve-to'] === 'string' ? parseHostPort(flags.values['geneve-to'], '127.0.0.1') : null;
  if ((flags.values.to !== undefined && (!to || to.port === 0)) || (flags.values['geneve-to'] !== undefined && (!gTo || gTo.port === 0))) {
    throw usageError(SPEC, '--to and --geneve-to take HOST:PORT with a port (e.g. 127.0.0.1:4789, 127.0.0.1:6081)');
  }
  if (!to && !gTo) throw usageError(SPEC, '--to HOST:PORT is required (e.g. 127.0.0.1:4789), or --geneve-to for GENEVE');
  const rate = (flags.values.rate as number | undefined) ?? 0;
  const loops = (flags.values.loop as number | undefined) ?? 1;
  const vxlanPort = (flags.values['vxlan-port'] as number | undefined) ?? 4789;
  const genevePort = (flags.values['geneve-port'] as number | undefined) ?? 6081;
  if (genevePort === vxlanPort) throw usageError(SPEC, '--geneve-port and --vxlan-port must differ');
  const file = flags.positionals[0]!;
  const first = openCapture(file); // fail fast on a bad file or link type
  first.close();
  checkHeaderLinktype(file, first.linktype);

  const connect = async (dest: { host: string; port: number }) => {
    const sock = createSocket(isIPv6(dest.host) ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.connect(dest.port, dest.host, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    return sock;
  };
  const vxSock = to ? await connect(to) : null;
  const gvSock = gTo ? await connect(gTo) : null;
  const st = new PacketState();
  const skipped = new Map<string, number>();
  let sent = 0;
  let bytes = 0;
  let gSent = 0;
  let gBytes = 0;
  const skip = (name: string) => skipped.set(name, (skipped.get(name) ?? 0) + 1);
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
        const code = decodeOuter(r.buf, r.off, r.off + r.caplen, r.linktype, st, vxlanPort, genevePort);
        if (code !== DROP.OK) {
          skip(DROP_NAMES[code]!);
          continue;
        }
        // UDP to the GENEVE port: the payload (GENEVE header, options, what it carries) goes to --geneve-to as is.
        const isGeneve = st.outerDstPort === genevePort;
        const sock = isGeneve ? gvSock : vxSock;
        if (sock === null) {
          skip(isGeneve ? 'geneve (no --geneve-to)' : 'vxlan (no --to)');
          continue;
        }
        // The reader reuses its buffer: send a copy.
        const payload = Buffer.from(r.buf.subarray(st.vxlanOff, st.vxlanEnd));
        inFlight++;
        sock.send(payload, () => inFlight--);
        if (isGeneve) {
          gSent++;
          gBytes += payload.length;
        } else {
          sent++;
          bytes += payload.length;
        }
        if (intervalMs > 0) {
          const due = started + (sent + gSent) * intervalMs;
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
  vxSock?.close();
  gvSock?.close();
  const secs = (performance.now() - started) / 1000;
  const skippedText = [...skipped].map(([k, v]) => `${k}=${v}`).join(' ');
  const parts: string[] = [];
  if (vxSock) parts.push(`${sent} VXLAN datagrams (${bytes} bytes) to ${flags.values.to as string}`);
  if (gvSock) parts.push(`${gSent} GENEVE datagrams (${gBytes} bytes) to ${flags.values['geneve-to'] as string}`);
  io.stdout.write(`sent ${parts.join(' and ')} in ${secs.toFixed(2)} s${skippedText ? `; skipped ${skippedText}` : ''}\n`);
  return EXIT.OK;
}
