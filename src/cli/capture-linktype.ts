/**
 * decap and replay refuse a capture whose link type carries no IP layer we can find (802.11 radiotap,
 * USB, ...): counting every frame as dropped and exiting 0 would tell the user all went well.
 * Classic pcap names its link type in the file header, so it is refused before anything is written;
 * pcapng names one per interface, so a file is refused after reading when none of its frames could be read.
 */
import { isSupportedLinktype } from '../decode/outer.js';
import { MgError } from '../errors.js';

const HINT = 'capture on the mirror target\'s Ethernet interface (tcpdump -i eth0 -w FILE udp port 4789)';

/** Before reading: the header's link type, when the file has one (-1: pcapng, known per interface). */
export function checkHeaderLinktype(file: string, linktype: number): void {
  if (linktype >= 0 && !isSupportedLinktype(linktype)) throw linktypeError(file, linktype);
}

/** Tracks the frames of one file; after reading, throws when every frame had an unsupported link type. */
export class LinktypeTally {
  private frames = 0;
  private unsupported = 0;
  private firstBad = -1;

  add(linktype: number): boolean {
    this.frames++;
    if (isSupportedLinktype(linktype)) return true;
    this.unsupported++;
    if (this.firstBad < 0) this.firstBad = linktype;
    return false;
  }

  check(file: string): void {
    if (this.frames > 0 && this.unsupported === this.frames) throw linktypeError(file, this.firstBad);
  }
}

function linktypeError(file: string, linktype: number): MgError {
  return new MgError('MG_ERR_CAPTURE_LINKTYPE', `${file}: link type ${linktype}`, { problems: [{ file, message: `link type ${linktype} has no IP layer mirrorguard can find; ${HINT}` }] });
}
