/**
 * Uploads one closed PCAP file to S3 so that S3 itself checks the bytes against our SHA-256:
 *
 * - Up to `multipartThresholdBytes`: one PutObject with `x-amz-checksum-sha256` = base64 of the file's
 *   SHA-256. S3 computes the SHA-256 of what arrived and refuses the PUT (BadDigest) when it differs,
 *   then stores the checksum with the object (HeadObject/GetObjectAttributes return it).
 * - Above: a multipart upload with ChecksumAlgorithm SHA256. Each UploadPart carries the part's SHA-256,
 *   which S3 verifies on arrival; CompleteMultipartUpload lists them, and S3 stores the COMPOSITE
 *   checksum `base64(SHA-256(d1 || d2 || ... || dN))-N` (SHA-256 has no FULL_OBJECT mode in S3; only the
 *   CRC algorithms do: https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html).
 *   The full-file SHA-256 travels in metadata (`x-amz-meta-sha256`), which S3 does not verify; it is
 *   reproducible by anyone from the bytes, S3 vouches for every part, and the ledger signs it.
 *
 * Before anything is sent the file's bytes are hashed as read and compared with the catalog's SHA-256:
 * a file changed on disk since it was closed is never archived as evidence (ArchiveIntegrityError, a
 * permanent failure). A multipart upload whose full hash turns out wrong is aborted, never completed.
 *
 * Object Lock retention (mode + retain-until) and SSE (AES256, or aws:kms with a key ID) are set in the
 * same request that creates the object, so there is no window in which the object exists unprotected.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  PutObjectCommand,
  PutObjectLegalHoldCommand,
  PutObjectRetentionCommand,
  UploadPartCommand,
  type S3Client,
  type ServerSideEncryption,
} from '@aws-sdk/client-s3';
import { objectKey } from './key.js';
import type { ArchiveFile, UploadResult } from './types.js';

const MiB = 1024 * 1024;
/** S3's smallest part (all but the last) and most parts: https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html */
export const S3_MIN_PART_BYTES = 5 * MiB;
export const S3_MAX_PARTS = 10_000;

export interface S3ArchiverOptions {
  client: S3Client;
  bucket: string;
  prefix: string;
  objectLock?: { mode: 'GOVERNANCE' | 'COMPLIANCE'; days: number } | null;
  kmsKeyId?: string | null;
  /** Files larger than this go multipart. Default 64 MiB. */
  multipartThresholdBytes?: number;
  /** Part size (at least 5 MiB; raised when a file would need more than 10,000 parts). Default 16 MiB. */
  partBytes?: number;
  /** Clock for retain-until dates. */
  now?: () => number;
}

/** The local file's bytes do not match the catalog's SHA-256 (or its size): it is not archived. Permanent. */
export class ArchiveIntegrityError extends Error {
  readonly permanent = true;
  constructor(message: string) {
    super(message);
    this.name = 'ArchiveIntegrityError';
  }
}

/** S3 reported a checksum other than the one we computed: the object is not the evidence we sent. */
export class ArchiveChecksumMismatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ArchiveChecksumMismatchError';
  }
}

/** User metadata (x-amz-meta-*): ASCII values; times in RFC 3339 and microseconds. */
export function objectMetadata(file: ArchiveFile): Record<string, string> {
  const iso = (us: number | null) => (us === null ? '' : new Date(Math.floor(us / 1000)).toISOString());
  return {
    node: file.node,
    vni: String(file.vni),
    'source-ip': file.sourceIp,
    session: file.sessionId ?? '',
    'first-packet': iso(file.firstUs),
    'last-packet': iso(file.lastUs),
    'first-us': file.firstUs === null ? '' : String(file.firstUs),
    'last-us': file.lastUs === null ? '' : String(file.lastUs),
    packets: String(file.packets),
    sha256: file.sha256,
    'capture-id': String(file.captureId),
  };
}

/** The composite checksum S3 stores for a multipart upload with SHA-256 part checksums. */
export function compositeSha256(partDigests: Buffer[]): string {
  return `${createHash('sha256').update(Buffer.concat(partDigests)).digest('base64')}-${partDigests.length}`;
}

/** Compare S3's reported checksum with ours; S3 and some emulators omit the `-N` suffix of a composite. */
function sameChecksum(reported: string | undefined, ours: string): boolean {
  if (reported === undefined) return true; // not echoed by this endpoint: S3 verified on arrival or refused
  return reported === ours || reported === ours.replace(/-\d+$/, '');
}

export class S3Archiver {
  readonly bucket: string;
  readonly prefix: string;
  private readonly client: S3Client;
  private readonly lock: S3ArchiverOptions['objectLock'];
  private readonly kmsKeyId: string | null;
  private readonly threshold: number;
  private readonly partBytes: number;
  private readonly now: () => number;

  constructor(opts: S3ArchiverOptions) {
    this.client = opts.client;
    this.bucket = opts.bucket;
    this.prefix = opts.prefix;
    this.lock = opts.objectLock ?? null;
    this.kmsKeyId = opts.kmsKeyId ?? null;
    this.partBytes = Math.max(S3_MIN_PART_BYTES, opts.partBytes ?? 16 * MiB);
    this.threshold = Math.max(this.partBytes, opts.multipartThresholdBytes ?? 64 * MiB);
    this.now = opts.now ?? Date.now;
  }

  keyFor(file: ArchiveFile): string {
    return objectKey(this.prefix, file);
  }

  private protection(): {
    ServerSideEncryption: ServerSideEncryption;
    SSEKMSKeyId?: string;
    ObjectLockMode?: 'GOVERNANCE' | 'COMPLIANCE';
    ObjectLockRetainUntilDate?: Date;
  } {
    const p: ReturnType<S3Archiver['protection']> = this.kmsKeyId ? { ServerSideEncryption: 'aws:kms', SSEKMSKeyId: this.kmsKeyId } : { ServerSideEncryption: 'AES256' };
    if (this.lock) {
      p.ObjectLockMode = this.lock.mode;
      p.ObjectLockRetainUntilDate = new Date(this.now() + this.lock.days * 86_400_000);
    }
    return p;
  }

  async upload(file: ArchiveFile, signal?: AbortSignal): Promise<UploadResult> {
    const fh = await open(file.path, 'r').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') throw new ArchiveIntegrityError(`${file.path}: the file is gone`);
      throw e;
    });
    try {
      const size = (await fh.stat()).size;
      if (size !== file.bytes) throw new ArchiveIntegrityError(`${file.path}: ${size} bytes on disk, the catalog says ${file.bytes}`);
      const key = this.keyFor(file);
      return size <= this.threshold ? await this.putOne(fh, file, key, size, signal) : await this.putMultipart(fh, file, key, size, signal);
    } finally {
      await fh.close();
    }
  }

  private async putOne(fh: import('node:fs/promises').FileHandle, file: ArchiveFile, key: string, size: number, signal?: AbortSignal): Promise<UploadResult> {
    const body = Buffer.allocUnsafe(size);
    let off = 0;
    while (off < size) {
      const { bytesRead } = await fh.read(body, off, size - off, off);
      if (bytesRead === 0) throw new ArchiveIntegrityError(`${file.path}: shorter than ${size} bytes while reading`);
      off += bytesRead;
    }
    const digest = createHash('sha256').update(body).digest();
    this.checkCatalog(file, digest);
    const b64 = digest.toString('base64');
    const prot = this.protection();
    const r = await this.client.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: key,
        Body: body,
        ContentLength: size,
        ContentType: 'application/vnd.tcpdump.pcap',
        // Both: the algorithm header tells S3 (and Object Lock's integrity requirement) which checksum we send.
        ChecksumAlgorithm: 'SHA256',
        ChecksumSHA256: b64,
        Metadata: objectMetadata(file),
        ...prot,
      }),
      { abortSignal: signal },
    );
    if (!sameChecksum(r.ChecksumSHA256, b64)) throw new ArchiveChecksumMismatchError(`s3://${this.bucket}/${key}: S3 reports ChecksumSHA256 ${r.ChecksumSHA256}, we sent ${b64}`);
    return {
      bucket: this.bucket,
      key,
      versionId: r.VersionId ?? null,
      etag: r.ETag ?? '',
      sha256: file.sha256,
      s3ChecksumSha256: r.ChecksumSHA256 ?? b64,
      parts: 1,
      size,
      retainUntil: prot.ObjectLockRetainUntilDate ?? null,
    };
  }

  private async putMultipart(fh: import('node:fs/promises').FileHandle, file: ArchiveFile, key: string, size: number, signal?: AbortSignal): Promise<UploadResult> {
    const partBytes = Math.max(this.partBytes, Math.ceil(size / S3_MAX_PARTS));
    const prot = this.protection();
    const created = await this.client.send(
      new CreateMultipartUploadCommand({
        Bucket: this.bucket,
        Key: key,
        ContentType: 'application/vnd.tcpdump.pcap',
        ChecksumAlgorithm: 'SHA256',
        Metadata: objectMetadata(file),
        ...prot,
      }),
      { abortSignal: signal },
    );
    const uploadId = created.UploadId!;
    const whole = createHash('sha256');
    const digests: Buffer[] = [];
    const parts: { PartNumber: number; ETag: string; ChecksumSHA256: string }[] = [];
    const buf = Buffer.allocUnsafe(Math.min(partBytes, size));
    try {
      for (let pos = 0, n = 1; pos < size; pos += partBytes, n++) {
        const len = Math.min(partBytes, size - pos);
        let got = 0;
        while (got < len) {
          const { bytesRead } = await fh.read(buf, got, len - got, pos + got);
          if (bytesRead === 0) throw new ArchiveIntegrityError(`${file.path}: shorter than ${size} bytes while reading`);
          got += bytesRead;
        }
        const part = buf.subarray(0, len);
        whole.update(part);
        const d = createHash('sha256').update(part).digest();
        digests.push(d);
        const b64 = d.toString('base64');
        const r = await this.client.send(
          new UploadPartCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumber: n, Body: part, ContentLength: len, ChecksumAlgorithm: 'SHA256', ChecksumSHA256: b64 }),
          { abortSignal: signal },
        );
        if (!sameChecksum(r.ChecksumSHA256, b64)) throw new ArchiveChecksumMismatchError(`s3://${this.bucket}/${key} part ${n}: S3 reports ${r.ChecksumSHA256}, we sent ${b64}`);
        parts.push({ PartNumber: n, ETag: r.ETag!, ChecksumSHA256: b64 });
      }
      // The whole file, as read, must be what the catalog recorded before S3 is asked to assemble it.
      this.checkCatalog(file, whole.digest());
      const composite = compositeSha256(digests);
      const done = await this.client.send(
        new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts } }),
        { abortSignal: signal },
      );
      if (!sameChecksum(done.ChecksumSHA256, composite)) throw new ArchiveChecksumMismatchError(`s3://${this.bucket}/${key}: S3 reports composite ${done.ChecksumSHA256}, we computed ${composite}`);
      if (prot.ObjectLockMode) await this.ensureRetention(key, done.VersionId ?? null, prot.ObjectLockMode, prot.ObjectLockRetainUntilDate!);
      return {
        bucket: this.bucket,
        key,
        versionId: done.VersionId ?? null,
        etag: done.ETag ?? '',
        sha256: file.sha256,
        s3ChecksumSha256: composite,
        parts: parts.length,
        size,
        retainUntil: prot.ObjectLockRetainUntilDate ?? null,
      };
    } catch (e) {
      // Leave no parts behind (they are billed); the bucket's lifecycle rule also aborts stale uploads.
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId })).catch(() => undefined);
      throw e;
    }
  }

  /**
   * S3 applies the retention given to CreateMultipartUpload to the completed object; an S3-compatible
   * endpoint may not (moto 5.2 does not). Check, and set it on the version when it is missing, so no
   * archived object is left unlocked. One HEAD per multipart upload.
   */
  private async ensureRetention(key: string, versionId: string | null, mode: 'GOVERNANCE' | 'COMPLIANCE', until: Date): Promise<void> {
    const v = versionId ? { VersionId: versionId } : {};
    const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key, ...v }));
    if (head.ObjectLockMode === mode && (head.ObjectLockRetainUntilDate?.getTime() ?? 0) >= until.getTime() - 1000) return;
    await this.client.send(
      new PutObjectRetentionCommand({ Bucket: this.bucket, Key: key, ...v, Retention: { Mode: mode, RetainUntilDate: until }, ChecksumAlgorithm: 'SHA256' }),
    );
  }

  private checkCatalog(file: ArchiveFile, digest: Buffer): void {
    const hex = digest.toString('hex');
    if (hex !== file.sha256.toLowerCase()) throw new ArchiveIntegrityError(`${file.path}: SHA-256 ${hex} on disk, the catalog says ${file.sha256}`);
  }

  /** Set or clear a legal hold on one object version (the bucket must have Object Lock enabled). */
  async setLegalHold(key: string, versionId: string | null, on: boolean): Promise<void> {
    await this.client.send(
      new PutObjectLegalHoldCommand({
        Bucket: this.bucket,
        Key: key,
        ...(versionId ? { VersionId: versionId } : {}),
        LegalHold: { Status: on ? 'ON' : 'OFF' },
        // Object Lock requests need an integrity checksum (Content-MD5 or a flexible checksum).
        ChecksumAlgorithm: 'SHA256',
      }),
    );
  }
}
