/** The validated, frozen manifest (docs/manifest.md). Produced by src/detect/manifest.ts. */
export interface ManifestSession {
  /** Traffic mirror session ID, `tms-` and 17 hex digits (8 in older accounts). */
  id: string;
  /** VXLAN network identifier, 0..16777215. */
  vni: number;
  sourceEni?: string;
  /** The source ENI's IPs as written (canonical text form); absent means any source for this VNI. */
  sourceIps?: readonly string[];
  targetId?: string;
  filterId?: string;
  /**
   * The Gateway Load Balancer endpoint (`vpce-...`) the session's traffic arrives through when the
   * mirror target is a GWLB endpoint. Traffic of the session through another endpoint is a finding
   * (unexpected-gwlb-endpoint). Absent: any endpoint, or none.
   */
  gwlbEndpointId?: string;
  owner?: string;
  description?: string;
  /**
   * AWS region of the session (e.g. `eu-central-1`). Optional; an inventory of one region ignores
   * manifest sessions that name another, so one manifest can cover several regions.
   */
  region?: string;
  /** ms since the epoch. */
  expires?: number;
  /** Line of the entry in the manifest file, for messages. */
  line: number;
}

export interface Manifest {
  file: string;
  version: 1;
  sessions: readonly ManifestSession[];
  /** SHA-256 of the file's bytes, to show which manifest was in force. */
  sha256: string;
}
