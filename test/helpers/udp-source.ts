/**
 * Send UDP datagrams from a chosen loopback source (127.x.y.z: Linux answers for all of 127.0.0.0/8, so a
 * socket can bind any of them), the way a mirror source or a Gateway Load Balancer would reach the
 * collector. Plain node:dgram, no scapy: the payload (VXLAN, GENEVE ...) is built by the test.
 *
 * The socket stays open until close(), and counts whatever arrives on it: a collector must never send
 * anything back to a mirror source or a GWLB.
 */
import { createSocket, type Socket } from 'node:dgram';

export interface UdpSource {
  readonly address: string;
  readonly port: number;
  /** Datagrams that came back to this socket. */
  readonly received: Buffer[];
  send(port: number, payloads: readonly Uint8Array[], host?: string): Promise<void>;
  close(): Promise<void>;
}

export async function udpSource(address: string): Promise<UdpSource> {
  if (!/^127\.\d+\.\d+\.\d+$/.test(address)) throw new Error(`udpSource: ${address} is not a loopback address`);
  const sock: Socket = createSocket('udp4');
  const received: Buffer[] = [];
  sock.on('message', (m) => received.push(m));
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind({ address, port: 0 }, () => {
      sock.off('error', reject);
      resolve();
    });
  });
  return {
    address,
    port: sock.address().port,
    received,
    async send(port, payloads, host = '127.0.0.1') {
      for (const p of payloads) {
        await new Promise<void>((resolve, reject) => sock.send(p, port, host, (err) => (err ? reject(err) : resolve())));
      }
    },
    close: () => new Promise<void>((resolve) => sock.close(() => resolve())),
  };
}
