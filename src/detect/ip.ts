/**
 * IP address text in one canonical form, so that the manifest's `sourceIps`, the collector's outer source
 * address and AWS inventory compare as strings. IPv4 is strict dotted decimal; IPv6 follows RFC 5952
 * section 4 (lowercase, no leading zeros, the longest run of two or more zero groups shortened to `::`,
 * the first such run on a tie) and section 5 (IPv4-mapped addresses keep the dotted quad).
 *
 * This runs when a manifest loads and on the first packet of a pair whose address missed the index,
 * never per packet.
 */

/** The canonical text of an IPv4 or IPv6 address, or null when `text` is not one. Zone IDs are refused. */
export function canonicalIp(text: string): string | null {
  if (text.includes(':')) {
    const groups = parseIpv6(text);
    return groups === null ? null : formatIpv6(groups);
  }
  const v4 = parseIpv4(text);
  return v4 === null ? null : formatIpv4(v4);
}

/** The address family of a canonical address. */
export function ipFamily(canonical: string): 4 | 6 {
  return canonical.includes(':') ? 6 : 4;
}

/**
 * Four octets, or null. Leading zeros are refused: `010.0.0.1` is octal to inet_aton(3) and decimal to
 * other parsers, so it has no single meaning a security manifest could rely on.
 */
function parseIpv4(text: string): number[] | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  const out: number[] = [];
  for (const p of parts) {
    if (!/^(?:0|[1-9][0-9]{0,2})$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    out.push(n);
  }
  return out;
}

function formatIpv4(o: readonly number[]): string {
  return `${o[0]}.${o[1]}.${o[2]}.${o[3]}`;
}

/** Eight 16-bit groups (RFC 4291 section 2.2 text forms), or null. */
function parseIpv6(text: string): number[] | null {
  if (text.includes('%')) return null; // a zone ID (RFC 4007) names a link, not an address on the wire
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const head = halves[0] === '' ? [] : halves[0]!.split(':');
  const tail = halves.length === 2 ? (halves[1] === '' ? [] : halves[1]!.split(':')) : [];
  const groups: number[] = [];
  const parseSide = (parts: string[], isLast: boolean): number[] | null => {
    const out: number[] = [];
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (isLast && i === parts.length - 1 && p.includes('.')) {
        const v4 = parseIpv4(p);
        if (v4 === null) return null;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return null;
        out.push(parseInt(p, 16));
      }
    }
    return out;
  };
  const h = parseSide(head, halves.length === 1);
  const t = parseSide(tail, true);
  if (h === null || t === null) return null;
  if (halves.length === 1) {
    if (h.length !== 8) return null;
    return h;
  }
  const missing = 8 - h.length - t.length;
  if (missing < 1) return null; // `::` stands for at least one group
  groups.push(...h);
  for (let i = 0; i < missing; i++) groups.push(0);
  groups.push(...t);
  return groups;
}

function formatIpv6(g: readonly number[]): string {
  // RFC 5952 section 5: ::ffff:a.b.c.d keeps the IPv4 part dotted.
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `::ffff:${g[6]! >> 8}.${g[6]! & 255}.${g[7]! >> 8}.${g[7]! & 255}`;
  }
  // RFC 5952 section 4.2: shorten the longest run of zero groups (at least two); the first on a tie.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number): string =>
    g
      .slice(from, to)
      .map((n) => n.toString(16))
      .join(':');
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLen, 8)}`;
}
