/**
 * The default receiver: node:dgram on UDP 4789 (RFC 7348 section 5: the IANA VXLAN port; AWS Traffic
 * Mirroring sends there). The kernel strips the outer IP/UDP headers, so each 'message' is the VXLAN
 * header plus the inner frame and rinfo carries the outer source address.
 *
 * One 'message' event and one Buffer per datagram is node:dgram's ceiling (~100-150k packets/s on
 * one core); the native recvmmsg receiver lifts it. The receive buffer matters more than anything
 * else at bursts: we ask for recvBufferBytes and report what the kernel granted.
 */
import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { MgError } from '../errors.js';
import type { DatagramSink } from './sink.js';
import { Timestamp } from '../util/clock.js';
import type { Logger } from '../util/log.js';

export interface UdpReceiverOptions {
  host: string;
  port: number;
  recvBufferBytes: number;
  logger: Logger;
  /**
   * What the datagrams carry: VXLAN from the mirror source (the default), or GENEVE from a Gateway Load
   * Balancer, whose own address is not the session (the VXLAN packet inside GENEVE names it).
   */
  payload?: 'vxlan' | 'geneve';
}

export interface BoundReceiver {
  readonly kind: 'dgram' | 'native' | 'af-packet';
  readonly address: { host: string; port: number };
  /** Receive buffer the kernel granted, in bytes (Linux reports twice the usable size). */
  readonly recvBufferBytes: number;
  close(): Promise<void>;
}

export async function startUdpReceiver(collector: DatagramSink, opts: UdpReceiverOptions): Promise<BoundReceiver> {
  const type = isIPv6(opts.host) ? 'udp6' : 'udp4';
  const sock: Socket = createSocket({ type, recvBufferSize: opts.recvBufferBytes, ipv6Only: false });
  const ts = new Timestamp();
  const geneve = opts.payload === 'geneve';
  // Receive only: nothing is ever sent on this socket. A GWLB appliance normally returns each packet
  // to the GWLB; a collector of mirrored copies must not, or it would re-inject them (docs/install.md).
  sock.on('message', (msg, rinfo) => {
    ts.now();
    if (geneve) collector.ingestGeneve(msg, 0, msg.length, ts.sec, ts.nsec);
    else collector.ingestAddress(msg, 0, msg.length, rinfo.address, ts.sec, ts.nsec);
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      sock.close();
      reject(new MgError('MG_ERR_INGEST_BIND', `${opts.host}:${opts.port}: ${err.code ?? err.message}`, { cause: err }));
    };
    sock.once('error', onError);
    sock.bind({ address: opts.host, port: opts.port, exclusive: true }, () => {
      sock.off('error', onError);
      resolve();
    });
  });
  // After bind, socket errors are rare (ICMP-triggered on some kernels) and never fatal.
  sock.on('error', (err) => opts.logger.warn({ err: err.message }, 'UDP socket error'));

  let granted = 0;
  try {
    granted = sock.getRecvBufferSize();
  } catch {
    /* not available on every platform */
  }
  // Linux doubles the value set by SO_RCVBUF for bookkeeping overhead and caps the request at
  // net.core.rmem_max; compare half the reported value with what was asked for.
  if (granted > 0 && granted / 2 < opts.recvBufferBytes * 0.99) {
    opts.logger.warn(
      { requested: opts.recvBufferBytes, granted: Math.floor(granted / 2) },
      `the kernel capped the receive buffer; raise it with: sysctl -w net.core.rmem_max=${opts.recvBufferBytes} (deploy/sysctl.d/60-mirrorguard.conf)`,
    );
  }
  const a = sock.address();
  opts.logger.info({ receiver: 'dgram', address: a.address, port: a.port, recvBufferBytes: granted }, geneve ? 'receiving GENEVE from a Gateway Load Balancer' : 'receiving VXLAN');
  return {
    kind: 'dgram',
    address: { host: a.address, port: a.port },
    recvBufferBytes: granted,
    close: () => new Promise<void>((resolve) => sock.close(() => resolve())),
  };
}
