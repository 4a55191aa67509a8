/**
 * An archived capture read from S3 as a ReadHandle (src/pcap/reader.ts), so an extraction merges it like
 * a local file: every read() is one ranged GET of exactly the bytes asked for (the merge's read buffer,
 * 64 KiB to 1 MiB), read into the caller's buffer. Nothing is held between reads (no open connection per
 * input, so a merge of hundreds of archived files cannot starve the client's socket pool), and memory is
 * the caller's buffer plus what one response has in flight. A body cut short is asked for again from
 * where it stopped (the SDK retries the request itself, not a body that breaks off).
 */
import type { Readable } from 'node:stream';
import type { ReadHandle } from '../pcap/reader.js';

/** Bytes start..end (inclusive) of an object version: ApiDeps.archive.readObject. */
export type ReadObject = (key: string, versionId: string | null, start: number, end: number) => Promise<NodeJS.ReadableStream>;

/** Attempts per read() at the body (each a new ranged GET from where the last one stopped). */
const BODY_ATTEMPTS = 3;

export class ArchivedObjectHandle implements ReadHandle {
  private pos = 0;
  private closed = false;
  /** Ranged GETs made (tests, stats). */
  requests = 0;

  constructor(
    private readonly readObject: ReadObject,
    private readonly key: string,
    private readonly versionId: string | null,
    /** The object's size (the catalog's bytes at close): reads stop there. */
    private readonly size: number,
  ) {}

  async read(buffer: Buffer, offset: number, length: number, position: number | null): Promise<{ bytesRead: number }> {
    if (this.closed) throw new Error(`s3 object ${this.key}: handle is closed`);
    const at = position ?? this.pos;
    const want = Math.min(length, this.size - at);
    if (want <= 0) return { bytesRead: 0 };
    let got = 0;
    let lastError: unknown = null;
    for (let attempt = 0; attempt < BODY_ATTEMPTS && got < want; attempt++) {
      try {
        this.requests++;
        const body = (await this.readObject(this.key, this.versionId, at + got, at + want - 1)) as Readable;
        const before = got;
        for await (const chunk of body as AsyncIterable<Buffer>) {
          const n = Math.min(chunk.length, want - got);
          chunk.copy(buffer, offset + got, 0, n);
          got += n;
          if (got >= want) {
            body.destroy();
            break;
          }
        }
        if (got === before) throw new Error(`no bytes at ${at + got} (shorter than the catalog's ${this.size})`);
      } catch (e) {
        lastError = e;
      }
    }
    if (got < want) throw new Error(`s3 object ${this.key}: read ${got} of ${want} bytes at ${at}: ${(lastError as Error | null)?.message ?? 'body ended early'}`);
    this.pos = at + got;
    return { bytesRead: got };
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
