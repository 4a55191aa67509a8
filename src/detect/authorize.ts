/**
 * Which manifest session, if any, authorizes a (source IP, VNI) pair. Mirrored packets carry no session
 * ID: AWS wraps them in VXLAN with the session's VNI and sends them from the source ENI's primary IP
 * (AWS "Traffic mirroring packet format"), and users may reuse a VNI across sessions, so the pair is
 * the key. The index is built once per manifest; a lookup is two Map reads and returns a result object
 * built in advance, so it allocates nothing unless the address text is not in canonical form.
 */
import { canonicalIp } from '../decode/addr.js';
import type { Manifest, ManifestSession } from './manifest-types.js';

export type AuthStatus = 'authorized' | 'unauthorized-vni' | 'unexpected-source' | 'expired';

export interface AuthResult {
  readonly status: AuthStatus;
  /** The session the pair belongs to (authorized, expired), or the one claiming the VNI (unexpected-source, when only one does). */
  readonly session?: ManifestSession;
}

interface VniEntry {
  /** Source IP -> session, when the VNI's sessions list more than one address (null: `ip` below, or none). */
  readonly byIp: Map<string, ManifestSession> | null;
  /** The one listed address and its session, when there is exactly one: a Map per VNI cost ~480 bytes, 5 MB for 10,000 sessions. */
  readonly ip: string | undefined;
  readonly ipSession: ManifestSession | undefined;
  /** The session that lists no sourceIps: any source on this VNI is its traffic. */
  readonly any: ManifestSession | undefined;
  /** Every session on this VNI, in manifest order (for evidence). */
  readonly sessions: readonly ManifestSession[];
  readonly unexpected: AuthResult;
}

const UNAUTHORIZED: AuthResult = Object.freeze({ status: 'unauthorized-vni' });

export class ManifestIndex {
  private readonly byVni = new Map<number, VniEntry>();
  private readonly byId = new Map<string, ManifestSession>();
  private readonly authorized = new Map<ManifestSession, AuthResult>();
  private readonly expired = new Map<ManifestSession, AuthResult>();

  /** `null` builds the empty index: every pair is unauthorized. */
  constructor(readonly manifest: Manifest | null) {
    if (manifest === null) return;
    const grouped = new Map<number, ManifestSession[]>();
    for (const s of manifest.sessions) {
      this.byId.set(s.id, s);
      this.authorized.set(s, Object.freeze({ status: 'authorized', session: s }));
      this.expired.set(s, Object.freeze({ status: 'expired', session: s }));
      const list = grouped.get(s.vni) ?? [];
      list.push(s);
      grouped.set(s.vni, list);
    }
    for (const [vni, sessions] of grouped) {
      const byIp = new Map<string, ManifestSession>();
      let any: ManifestSession | undefined;
      // The manifest check refuses overlapping claims, so the first writer is the only one.
      for (const s of sessions) {
        if (s.sourceIps === undefined) any ??= s;
        else for (const ip of s.sourceIps) if (!byIp.has(ip)) byIp.set(ip, s);
      }
      const unexpected: AuthResult = Object.freeze(sessions.length === 1 ? { status: 'unexpected-source', session: sessions[0]! } : { status: 'unexpected-source' });
      const one = byIp.size === 1 ? [...byIp][0]! : undefined;
      this.byVni.set(vni, { byIp: byIp.size > 1 ? byIp : null, ip: one?.[0], ipSession: one?.[1], any, sessions: Object.freeze(sessions), unexpected });
    }
  }

  /** The authorization of traffic from `sourceIp` on `vni` at `atMs` (ms since the epoch). */
  authorize(sourceIp: string, vni: number, atMs: number): AuthResult {
    const session = this.match(sourceIp, vni);
    if (session === undefined) {
      const e = this.byVni.get(vni);
      return e === undefined ? UNAUTHORIZED : e.unexpected;
    }
    if (session.expires !== undefined && atMs >= session.expires) return this.expired.get(session)!;
    return this.authorized.get(session)!;
  }

  /** The session that claims the pair, regardless of expiry. */
  match(sourceIp: string, vni: number): ManifestSession | undefined {
    const e = this.byVni.get(vni);
    if (e === undefined) return undefined;
    let s = byIpOf(e, sourceIp);
    if (s === undefined && (e.byIp !== null || e.ip !== undefined)) {
      // The collector's text for an address may differ from ours (IPv6 zero compression, case).
      const c = canonicalIp(sourceIp);
      if (c !== null && c !== sourceIp) s = byIpOf(e, c);
    }
    return s ?? e.any;
  }

  /** Every session that claims `vni` (empty when none). */
  sessionsForVni(vni: number): readonly ManifestSession[] {
    return this.byVni.get(vni)?.sessions ?? [];
  }

  session(id: string): ManifestSession | undefined {
    return this.byId.get(id);
  }

  get sessions(): readonly ManifestSession[] {
    return this.manifest?.sessions ?? [];
  }
}

function byIpOf(e: VniEntry, ip: string): ManifestSession | undefined {
  return e.byIp !== null ? e.byIp.get(ip) : ip === e.ip ? e.ipSession : undefined;
}

export function buildIndex(manifest: Manifest | null): ManifestIndex {
  return new ManifestIndex(manifest);
}
