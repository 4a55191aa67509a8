/**
 * A bounded free list of large write buffers, after Arkime's writer-simple: a writer fills one buffer with
 * whole records, hands it to the disk queue, and the queue gives it back here once it is on disk. Buffers
 * are allocated on demand up to `maxBytes` and then only reused, so steady-state capture allocates
 * nothing and memory for buffered packets has a hard ceiling. When every buffer is in use the writer
 * drops (pcap.write.queue_full): a slow disk costs packets, never unbounded memory.
 */
import { MgError } from '../errors.js';

export const DEFAULT_POOL_BUFFER_BYTES = 1024 * 1024;
export const DEFAULT_POOL_MAX_BYTES = 64 * 1024 * 1024;
/** Below this a buffer holds too few records for the per-write syscall cost to amortise. */
export const MIN_POOL_BUFFER_BYTES = 4096;

export interface BufferPoolOptions {
  /** Size of each buffer, bytes. Must hold at least one largest record (16 + snaplen). Default 1 MiB. */
  bufferBytes?: number;
  /** Ceiling on the memory of all buffers together, bytes. Default 64 MiB. */
  maxBytes?: number;
}

export class BufferPool {
  readonly bufferBytes: number;
  readonly maxBuffers: number;
  private readonly free: Buffer[] = [];
  private allocated = 0;
  /** Times acquire() found no buffer: the pool was the bottleneck. */
  exhausted = 0;

  constructor(opts: BufferPoolOptions = {}) {
    const bufferBytes = opts.bufferBytes ?? DEFAULT_POOL_BUFFER_BYTES;
    const maxBytes = opts.maxBytes ?? DEFAULT_POOL_MAX_BYTES;
    if (!Number.isInteger(bufferBytes) || bufferBytes < MIN_POOL_BUFFER_BYTES) {
      throw new MgError('MG_ERR_CONFIG_INVALID', `pcap buffer size ${bufferBytes} is below ${MIN_POOL_BUFFER_BYTES} bytes`, {
        problems: [{ field: 'bufferBytes', message: `must be an integer of at least ${MIN_POOL_BUFFER_BYTES}` }],
      });
    }
    if (!Number.isInteger(maxBytes) || maxBytes < bufferBytes) {
      throw new MgError('MG_ERR_CONFIG_INVALID', `pcap buffer pool of ${maxBytes} bytes cannot hold one ${bufferBytes}-byte buffer`, {
        problems: [{ field: 'maxBytes', message: 'must be at least bufferBytes' }],
      });
    }
    this.bufferBytes = bufferBytes;
    this.maxBuffers = Math.floor(maxBytes / bufferBytes);
  }

  /** A buffer for the caller's exclusive use until release(), or null when all are in use. */
  acquire(): Buffer | null {
    const b = this.free.pop();
    if (b !== undefined) return b;
    if (this.allocated < this.maxBuffers) {
      this.allocated++;
      // allocUnsafeSlow: a dedicated ArrayBuffer, never a slice of Node's shared pool; its old contents
      // are always overwritten by records before any byte of it is written out.
      return Buffer.allocUnsafeSlow(this.bufferBytes);
    }
    this.exhausted++;
    return null;
  }

  release(buf: Buffer): void {
    if (buf.length !== this.bufferBytes) throw new RangeError('buffer does not belong to this pool');
    this.free.push(buf);
  }

  /** Buffers currently handed out (being filled or queued for disk). */
  get inUse(): number {
    return this.allocated - this.free.length;
  }

  get available(): number {
    return this.maxBuffers - this.inUse;
  }

  get allocatedBytes(): number {
    return this.allocated * this.bufferBytes;
  }
}
