/** The PCAP layer: file format, buffered writer with a bounded disk queue, crash repair, reader, merge. */
export {
  compareTs,
  GLOBAL_HEADER_BYTES,
  globalHeader,
  LINKTYPE_ETHERNET,
  PCAP_MAGIC_NSEC,
  PCAP_MAGIC_USEC,
  PCAP_VERSION_MAJOR,
  PCAP_VERSION_MINOR,
  RECORD_HEADER_BYTES,
  SNAPLEN,
  writeGlobalHeader,
  writeRecordHeader,
} from './format.js';
export { BufferPool, DEFAULT_POOL_BUFFER_BYTES, DEFAULT_POOL_MAX_BYTES, type BufferPoolOptions } from './buffer-pool.js';
export {
  DEFAULT_MAX_CONCURRENT_WRITES,
  DEFAULT_MAX_QUEUED_BYTES,
  DiskQueue,
  dropCodeForError,
  type DiskErrorReport,
  type DiskOp,
  type DiskQueueOptions,
  type DropCounters,
} from './disk-queue.js';
export { DEFAULT_FLUSH_INTERVAL_MS, PcapFileWriter, type ClosedFileInfo, type PcapFileWriterOptions, type PcapFileWriterStats } from './file-writer.js';
export { repairPcap, repairPcapSync, type RepairOptions, type RepairResult } from './repair.js';
export {
  AsyncCaptureReader,
  CaptureReader,
  DEFAULT_CHUNK_BYTES,
  MAX_BLOCK_BYTES,
  openCapture,
  openCaptureAsync,
  type CaptureFormat,
  type CaptureReaderOptions,
  type CaptureRecord,
} from './reader.js';
export { mergeCaptures, MergeStream, type MergeOptions, type MergeStats } from './merge.js';
