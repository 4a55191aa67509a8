/**
 * The kernel's drop counter for our UDP sockets, from /proc/net/udp and /proc/net/udp6: packets the
 * kernel discarded because the socket's receive buffer was full, before we could see them. The last
 * column of each line is `drops`; sockets are matched by local port (and address when not a wildcard).
 * Linux only; elsewhere the counter reads as unavailable.
 */
import { readFileSync } from 'node:fs';

export interface KernelUdpStats {
  /** Sockets found bound to the port. */
  sockets: number;
  /** Sum of their drop counters. */
  drops: number;
  /** Sum of bytes currently queued in their receive buffers. */
  rxQueueBytes: number;
}

/** Parse one /proc/net/udp{,6} text for sockets bound to `port`. Exported for tests. */
export function parseProcNetUdp(text: string, port: number): KernelUdpStats {
  const out: KernelUdpStats = { sockets: 0, drops: 0, rxQueueBytes: 0 };
  const portHex = port.toString(16).toUpperCase().padStart(4, '0');
  const lines = text.split('\n');
  for (let i = 1; i < lines.length; i++) {
    const f = lines[i]!.trim().split(/\s+/);
    if (f.length < 13) continue;
    // f[1] local_address "0100007F:12B5", f[4] "tx_queue:rx_queue" in hex, last field drops.
    const local = f[1]!;
    if (local.slice(local.indexOf(':') + 1) !== portHex) continue;
    out.sockets++;
    const rx = f[4]!.split(':')[1];
    if (rx) out.rxQueueBytes += parseInt(rx, 16) || 0;
    out.drops += Number(f[f.length - 1]) || 0;
  }
  return out;
}

export function readKernelUdpStats(port: number): KernelUdpStats | null {
  let found = false;
  const total: KernelUdpStats = { sockets: 0, drops: 0, rxQueueBytes: 0 };
  for (const file of ['/proc/net/udp', '/proc/net/udp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    found = true;
    const s = parseProcNetUdp(text, port);
    total.sockets += s.sockets;
    total.drops += s.drops;
    total.rxQueueBytes += s.rxQueueBytes;
  }
  return found ? total : null;
}
