/** Human sizes in config files and flags: 33554432, "32MiB", "32M", "1.5GiB", "500MB". */
const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1000 ** 4,
  tib: 1024 ** 4,
};

/** Parse a byte size; returns NaN when the text is not one. */
export function parseBytes(v: unknown): number {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 ? v : NaN;
  if (typeof v !== 'string') return NaN;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(v);
  if (!m) return NaN;
  const mult = UNITS[m[2]!.toLowerCase()];
  if (mult === undefined) return NaN;
  const n = Math.round(Number(m[1]) * mult);
  return Number.isSafeInteger(n) ? n : NaN;
}

/** "HOST:PORT", "[v6]:PORT" or ":PORT"; returns null when malformed. */
export function parseHostPort(text: string, defaultHost = '0.0.0.0'): { host: string; port: number } | null {
  let host: string;
  let portText: string;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(text);
  if (v6) {
    host = v6[1]!;
    portText = v6[2]!;
  } else {
    const i = text.lastIndexOf(':');
    if (i < 0) return null;
    host = text.slice(0, i) || defaultHost;
    portText = text.slice(i + 1);
    if (host.includes(':')) return null; // a bare IPv6 address needs brackets
  }
  if (!/^\d+$/.test(portText)) return null;
  const port = Number(portText);
  if (port > 65535) return null;
  return { host, port };
}
