/**
 * From a catalog row to bytes on disk, without letting anything from a request near a path: requests
 * name captures by id; the path comes from the catalog row, must have the layout's shape
 * (src/collector/layout.ts) and must resolve inside `<dataDir>/pcap`. Files are opened with O_NOFOLLOW
 * and checked to be regular files, so a symlink planted in the data directory is refused, and the
 * size checks run on the descriptor that is then read (no check-then-open race).
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { basename, resolve, sep } from 'node:path';
import type { CaptureRow } from '../collector/catalog.js';
import { parseCaptureRelPath, PCAP_DIR } from '../collector/layout.js';
import type { Store } from '../store/store.js';
import { GLOBAL_HEADER_BYTES } from '../pcap/format.js';
import { httpError, notFound } from './errors.js';
import { isoMicros } from './time.js';

export type { CaptureRow };

export function captureById(store: Store, id: number): Promise<CaptureRow | undefined> {
  return store.captures.byId(id);
}

/** The absolute path of a row's file, or MG_ERR_API_INTEGRITY when the catalog holds an unexpected path. */
export function capturePath(dataDir: string, row: CaptureRow): string {
  const root = resolve(dataDir, PCAP_DIR) + sep;
  const abs = resolve(dataDir, row.path);
  if (parseCaptureRelPath(row.path) === null || !abs.startsWith(root)) {
    throw httpError('MG_ERR_API_INTEGRITY', `capture ${row.id}: the catalog path is not a capture path`);
  }
  return abs;
}

export interface OpenedCapture {
  fh: FileHandle;
  /** Bytes we may serve: the whole closed file, or an open file up to its last flushed record. */
  length: number;
  mtimeMs: number;
  /** On-disk size at open. */
  size: number;
}

/**
 * Open a capture for reading. A closed file must be exactly the size the catalog recorded at close;
 * an open file is served up to min(catalog bytes, size on disk), and at least its 24-byte header.
 */
export async function openCaptureFile(dataDir: string, row: CaptureRow): Promise<OpenedCapture> {
  const abs = capturePath(dataDir, row);
  let fh: FileHandle;
  try {
    fh = await open(abs, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw notFound(`capture ${row.id}: its file is no longer on disk (removed by retention?)`);
    if (code === 'ELOOP') throw httpError('MG_ERR_API_INTEGRITY', `capture ${row.id}: the file is a symbolic link`);
    throw e;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw httpError('MG_ERR_API_INTEGRITY', `capture ${row.id}: not a regular file`);
    let length: number;
    if (row.state === 'closed') {
      if (st.size !== row.bytes) {
        throw httpError('MG_ERR_API_INTEGRITY', `capture ${row.id}: ${st.size} bytes on disk, the catalog recorded ${row.bytes} at close`);
      }
      length = row.bytes;
    } else {
      length = Math.min(Math.max(row.bytes, GLOBAL_HEADER_BYTES), st.size);
      if (length < GLOBAL_HEADER_BYTES) throw notFound(`capture ${row.id}: nothing written to disk yet; retry in a second`);
    }
    return { fh, length, mtimeMs: st.mtimeMs, size: st.size };
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/** The JSON shape of a catalog row. */
export interface CaptureView {
  id: number;
  name: string;
  vni: number;
  sourceIp: string;
  sessionId: string | null;
  worker: number;
  state: 'open' | 'closed';
  createdAt: string;
  closedAt: string | null;
  firstPacketAt: string | null;
  lastPacketAt: string | null;
  packets: number;
  bytes: number;
  sha256: string | null;
  closeReason: string | null;
  download: string;
  gwlbEndpointId: string | null;
  gwlbAttachmentId: string | null;
  node: string;
  location: 'local' | 'archived' | 'both';
  s3: { bucket: string; key: string; versionId: string | null; archivedAt: string } | null;
  ledgerSeq: number | null;
  legalHold: boolean;
}

/** Where a file's bytes are: on this node's disk, in S3, or both (archived, local copy kept). */
export function locationOf(r: CaptureRow): CaptureView['location'] {
  const archived = r.s3_key != null && r.archived_us != null;
  if (!archived) return 'local';
  return r.local_removed_us != null ? 'archived' : 'both';
}

export function captureView(r: CaptureRow): CaptureView {
  return {
    id: r.id,
    name: basename(r.path),
    vni: r.vni,
    sourceIp: r.source_ip,
    sessionId: r.session_id,
    worker: r.worker,
    state: r.state,
    createdAt: isoMicros(r.created_us)!,
    closedAt: isoMicros(r.closed_us),
    firstPacketAt: isoMicros(r.first_us),
    lastPacketAt: isoMicros(r.last_us),
    packets: r.packets,
    bytes: r.bytes,
    sha256: r.sha256,
    closeReason: r.close_reason,
    download: `/v1/captures/${r.id}/pcap`,
    gwlbEndpointId: r.gwlb_endpoint_id ?? null,
    gwlbAttachmentId: r.gwlb_attachment_id ?? null,
    node: r.node ?? '',
    location: locationOf(r),
    s3: r.s3_key != null && r.s3_bucket != null && r.archived_us != null ? { bucket: r.s3_bucket, key: r.s3_key, versionId: r.s3_version_id ?? null, archivedAt: isoMicros(r.archived_us)! } : null,
    ledgerSeq: r.ledger_seq ?? null,
    legalHold: (r.legal_hold ?? 0) !== 0,
  };
}

export const captureSchema = {
  $id: 'Capture',
  type: 'object',
  description:
    'One PCAP file of the catalog: one (outer source IP, VNI) pair, classic libpcap with nanosecond timestamps. A file with state "open" is being written; its packets and bytes are as of its last flush (about every second) and it downloads up to there.',
  required: ['id', 'name', 'vni', 'sourceIp', 'sessionId', 'worker', 'state', 'createdAt', 'closedAt', 'firstPacketAt', 'lastPacketAt', 'packets', 'bytes', 'sha256', 'closeReason', 'download', 'gwlbEndpointId', 'gwlbAttachmentId', 'node', 'location', 's3', 'ledgerSeq', 'legalHold'],
  properties: {
    id: { type: 'integer' },
    name: { type: 'string', description: 'File name (the first packet time, the worker and a sequence number).' },
    vni: { type: 'integer', description: 'VXLAN network identifier of the mirror session.' },
    sourceIp: { type: 'string', description: 'Outer source IP: the mirrored ENI\'s primary address.' },
    sessionId: { type: ['string', 'null'], description: 'Manifest session the pair belongs to, when one does.' },
    worker: { type: 'integer' },
    state: { type: 'string', enum: ['open', 'closed'] },
    createdAt: { type: 'string', format: 'date-time' },
    closedAt: { type: ['string', 'null'], format: 'date-time' },
    firstPacketAt: { type: ['string', 'null'], format: 'date-time' },
    lastPacketAt: { type: ['string', 'null'], format: 'date-time' },
    packets: { type: 'integer' },
    bytes: { type: 'integer', description: 'File size, header included (open files: up to the last flushed record).' },
    sha256: { type: ['string', 'null'], description: 'SHA-256 of the whole file, hex; null while open.' },
    closeReason: { type: ['string', 'null'], description: 'size, age, idle, shutdown, gwlb-endpoint (the session moved to another GWLB endpoint), or recovered.' },
    download: { type: 'string', description: 'Path of the download route.' },
    gwlbEndpointId: {
      type: ['string', 'null'],
      description: 'The Gateway Load Balancer endpoint (vpce-...) that carried the packets of this file (AWS GENEVE option); null when they arrived straight over VXLAN.',
    },
    gwlbAttachmentId: { type: ['string', 'null'], description: 'The GWLB attachment id (16 hex digits) from the same GENEVE options, or null.' },
    node: { type: 'string', description: 'The collector that wrote the file (MIRRORGUARD_NODE, else its host name).' },
    location: {
      type: 'string',
      enum: ['local', 'archived', 'both'],
      description: 'local: only on the node\'s disk; both: archived to S3 and the local copy kept (archive.keepLocalHours); archived: only in S3.',
    },
    s3: {
      type: ['object', 'null'],
      description: 'Where the archive put the file, once S3 confirmed the upload; else null.',
      required: ['bucket', 'key', 'versionId', 'archivedAt'],
      properties: { bucket: { type: 'string' }, key: { type: 'string' }, versionId: { type: ['string', 'null'] }, archivedAt: { type: 'string', format: 'date-time' } },
    },
    ledgerSeq: { type: ['integer', 'null'], description: 'The evidence ledger record of the archived file (GET /v1/ledger), or null.' },
    legalHold: { type: 'boolean', description: 'An admin legal hold is on (POST /v1/captures/{id}/legal-hold): the local copy is kept and the S3 object cannot be deleted.' },
  },
} as const;
