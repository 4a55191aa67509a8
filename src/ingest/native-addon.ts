/**
 * Loads the optional N-API receiver (native/src/receiver.cc, built by `node native/build.mjs` at install)
 * and says why when it cannot: not built (no compiler at install time), not Linux, a build from another
 * version of the source, or a load error (a Node ABI mismatch after a Node upgrade). The answer is
 * cached: the addon is loaded at most once per thread.
 *
 * MIRRORGUARD_NATIVE_ADDON=PATH loads another build (or, pointing nowhere, simulates a machine without
 * one, which is how the fallback is tested).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PLAN_WORDS, PlannedCopy, type CopyEngine } from '../pcap/copy.js';
import type { BatchOpen, BatchWrite, DropCache, FileHash } from '../pcap/disk-queue.js';
import type { PageRelease } from '../pcap/region.js';

/** Must equal abiVersion in native/src/receiver.cc: the layout and methods this TypeScript expects. */
export const NATIVE_ABI_VERSION = 2;

/** Word offsets in a slot's metadata and flag bits, as the addon exports them (see receiver.cc). */
export interface NativeLayout {
  META_WORDS: number;
  M_LEN: number;
  M_FLAGS: number;
  M_FAMILY: number;
  M_SRC4: number;
  M_TS_SEC: number;
  M_TS_NSEC: number;
  M_SRC_PORT: number;
  M_ORIG_LEN: number;
  M_SRC6: number;
  FLAG_TRUNC: number;
  FLAG_CLOCK: number;
  MAX_BATCH: number;
  MIN_SLOT_BYTES: number;
  MAX_SLOT_BYTES: number;
  /** Int32 words per Copier plan entry (src/pcap/copy.ts PLAN_WORDS). */
  PLAN_WORDS: number;
}

export interface NativeSocketOptions {
  host: string;
  port: number;
  /** 0 leaves the system default. */
  recvBufferBytes: number;
  reusePort: boolean;
  batch: number;
  slotBytes: number;
  maxBatchesPerWakeup: number;
}

export interface NativeSocketInfo {
  family: 4 | 6;
  port: number;
  /** SO_RCVBUF as getsockopt reports it (Linux: twice the usable size). */
  recvBufferBytes: number;
  /** SO_RCVBUFFORCE took the size past net.core.rmem_max (CAP_NET_ADMIN). */
  recvBufferForced: boolean;
  kernelTimestamps: boolean;
  batch: number;
  slotBytes: number;
  data: ArrayBuffer;
  meta: ArrayBuffer;
}

export interface NativeSocketStats {
  wakeups: number;
  batches: number;
  packets: number;
  bytes: number;
  truncated: number;
  unstamped: number;
  maxBatch: number;
  /** The socket's cumulative kernel drop counter (SO_RXQ_OVFL), as of the last datagram read. */
  kernelDrops: number;
  kernelDropsAvailable: boolean;
  errors: number;
  lastError: string | null;
  paused: boolean;
  closed: boolean;
}

export interface NativeSocket {
  start(onBatch: (count: number) => void): void;
  pause(): void;
  resume(): void;
  /** True when already closed (never started); else onClosed runs once the handle is gone. */
  close(onClosed: () => void): boolean;
  stats(): NativeSocketStats;
  info(): NativeSocketInfo;
}

export interface NativeAddon {
  supported: true;
  abiVersion: number;
  layout: NativeLayout;
  /** memmove between two Uint8Arrays, bounds-checked; returns len, or -1 when out of range. Allocates nothing. */
  copyBytes(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number, len: number): number;
  /** Many files' writes in one threadpool job (native/src/writer.cc); absent in builds before it. */
  pwriteBatch?: BatchWrite;
  /** Many files' creates in one threadpool job (native/src/writer.cc); absent in builds before it. */
  openBatch?: BatchOpen;
  /** A capture file's SHA-256 that pwriteBatch updates on the threadpool (native/src/writer.cc); absent in builds before it. */
  FileSha256?: new () => FileHash;
  /** Drops a synced file's pages from the page cache, on the threadpool (native/src/writer.cc); absent in builds before it. */
  dropCache?: DropCache;
  /** The buffer pool's region pages (native/src/writer.cc, src/pcap/region.ts PageRelease); absent in builds before it. */
  pageOffset?: PageRelease['pageOffset'];
  releasePages?: PageRelease['releasePages'];
  Receiver: new (opts: NativeSocketOptions) => NativeSocket;
  /** Carries out a plan of frame copies in one call (src/pcap/copy.ts PlannedCopy). */
  Copier: new (plan: Int32Array) => CopyEngine;
}

export type AddonLoad = { ok: true; addon: NativeAddon; path: string } | { ok: false; reason: string };

const ADDON_FILE = 'mirrorguard_native.node';

/** Where the build puts the addon: native/build/Release, from src/ingest or dist/ingest alike. */
export function defaultAddonPath(): string {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  return join(root, 'native', 'build', 'Release', ADDON_FILE);
}

let cached: AddonLoad | undefined;

export function loadNativeAddon(): AddonLoad {
  if (cached === undefined) cached = load(process.env.MIRRORGUARD_NATIVE_ADDON || defaultAddonPath());
  return cached;
}

function load(path: string): AddonLoad {
  const shown = relative(process.cwd(), path) || path;
  if (process.platform !== 'linux') return { ok: false, reason: `the native receiver needs Linux (this is ${process.platform})` };
  if (!existsSync(path)) {
    return { ok: false, reason: `${shown} is not built (no C++ compiler at install time, or MIRRORGUARD_SKIP_NATIVE was set); run npm rebuild with g++ and make installed` };
  }
  let mod: { supported?: boolean; reason?: string; abiVersion?: number } & Partial<NativeAddon>;
  try {
    mod = createRequire(import.meta.url)(path) as typeof mod;
  } catch (e) {
    return { ok: false, reason: `${shown} does not load (${(e as Error).message.split('\n')[0]}); rebuild it with npm rebuild` };
  }
  if (mod.supported !== true) return { ok: false, reason: mod.reason ?? `${shown} reports it is unsupported here` };
  if (mod.abiVersion !== NATIVE_ABI_VERSION || !mod.layout || typeof mod.Receiver !== 'function' || typeof mod.Copier !== 'function') {
    return { ok: false, reason: `${shown} is a stale build (ABI ${String(mod.abiVersion)}, expected ${NATIVE_ABI_VERSION}); run npm rebuild` };
  }
  return { ok: true, addon: mod as NativeAddon, path };
}

/**
 * The addon's copyBytes for the PCAP writer's large-frame copy (src/pcap/copy.ts), or null when the addon
 * is not built. The composition (app.ts, the receive workers, decap) passes it in; src/pcap/ loads nothing.
 */
export function nativeCopyBytes(): ((dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number, len: number) => void) | null {
  // A plain N-API function: it needs no `this`, and calling it directly adds no wrapper per packet.
  return addonFunction('copyBytes');
}

/**
 * The disk queue's batched writes (src/pcap/disk-queue.ts BatchWrite: many files' buffers in one
 * threadpool job), or null when the addon is not built (or is a build without it).
 */
export function nativeBatchWrite(): BatchWrite | null {
  return addonFunction('pwriteBatch');
}

/** The disk queue's batched creates (src/pcap/disk-queue.ts BatchOpen), or null without the addon (or a build without it). */
export function nativeBatchOpen(): BatchOpen | null {
  return addonFunction('openBatch');
}

/** Drops a closed capture file's pages from the page cache (src/pcap/disk-queue.ts DropCache), or null without the addon. */
export function nativeDropCache(): DropCache | null {
  return addonFunction('dropCache');
}

/**
 * New capture files' SHA-256 for the disk queue's batched writes to update on the threadpool
 * (src/pcap/disk-queue.ts DiskQueueOptions.batchHash), or null without the addon (or a build without it).
 * MIRRORGUARD_CAPTURE_HASH=main keeps every update on the main thread, for measuring.
 */
export function nativeBatchHash(): (() => FileHash) | null {
  const a = loadNativeAddon();
  const C = a.ok && process.env.MIRRORGUARD_CAPTURE_HASH !== 'main' ? a.addon.FileSha256 : undefined;
  return typeof C === 'function' ? () => new C() : null;
}

/** One of the addon's plain functions, or null when the addon is not built (or is a build without it). */
function addonFunction<K extends 'copyBytes' | 'pwriteBatch' | 'openBatch' | 'dropCache' | 'pageOffset' | 'releasePages'>(name: K): NonNullable<NativeAddon[K]> | null {
  const a = loadNativeAddon();
  const f = a.ok ? a.addon[name] : undefined;
  return typeof f === 'function' ? (f as NonNullable<NativeAddon[K]>) : null;
}

/**
 * What a composition's session writers take from the addon (src/collector/session-writer.ts): the frame
 * copies, batched writes and creates, and drop-behind's last drop. Each null without the addon. app.ts
 * and the receive workers build their writers with it, so a new native piece is wired in one place.
 */
export function nativeWriterParts(): {
  copyBytes: ReturnType<typeof nativeCopyBytes>;
  plannedCopy: ReturnType<typeof nativePlannedCopy>;
  batchWrite: BatchWrite | null;
  batchOpen: BatchOpen | null;
  dropCache: DropCache | null;
  batchHash: (() => FileHash) | null;
  pages: PageRelease | null;
} {
  return {
    copyBytes: nativeCopyBytes(),
    plannedCopy: nativePlannedCopy(),
    batchWrite: nativeBatchWrite(),
    batchOpen: nativeBatchOpen(),
    dropCache: nativeDropCache(),
    batchHash: nativeBatchHash(),
    pages: nativePages(),
  };
}

/** The buffer pool's page release (src/pcap/region.ts), or null without the addon (or a build without it). */
export function nativePages(): PageRelease | null {
  const pageOffset = addonFunction('pageOffset');
  const releasePages = addonFunction('releasePages');
  return pageOffset !== null && releasePages !== null ? { pageOffset, releasePages } : null;
}

/**
 * The PCAP writers' per-batch frame copy (src/pcap/copy.ts PlannedCopy) over the addon's Copier, or null
 * when the addon is not built. One per composition (one per thread with receive workers): the native
 * receiver registers its batch buffer with the Collector, which ends every batch with one copy call.
 */
export function nativePlannedCopy(): PlannedCopy | null {
  const a = loadNativeAddon();
  if (!a.ok) return null;
  const { Copier, layout } = a.addon;
  if (layout.PLAN_WORDS !== PLAN_WORDS) return null;
  return new PlannedCopy((plan) => new Copier(plan));
}
