/**
 * Mirror traffic for the console tests, built in TypeScript (test/decode/frames.ts) and sent with
 * node:dgram from a loopback source address: serve sees 127.x.y.z as the mirror source's outer IP.
 */
import { createSocket } from 'node:dgram';
import { vxlan } from '../decode/frames.js';

/** Send `frames` (inner Ethernet frames), each wrapped in VXLAN with `vni`, from `source` to 127.0.0.1:`port`. */
export async function sendMirrored(port: number, source: string, vni: number, frames: readonly Uint8Array[]): Promise<void> {
  if (!source.startsWith('127.')) throw new Error(`source ${source}: use a loopback address (127.x.y.z)`);
  const sock = createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind({ address: source, port: 0 }, () => resolve());
  });
  try {
    for (const f of frames) {
      await new Promise<void>((resolve, reject) => sock.send(vxlan(vni, f), port, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
    }
  } finally {
    sock.close();
  }
}
