/**
 * The VXLAN header (RFC 7348 section 5), the start of every UDP payload AWS Traffic Mirroring sends.
 *
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |R|R|R|R|I|R|R|R|            Reserved                           |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                VXLAN Network Identifier (VNI) |   Reserved    |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * "I flag MUST be set to 1 for a valid VXLAN Network ID"; the R bits and reserved fields "MUST be set to
 * zero on transmission and ignored on receipt". AWS sets only I (0x08). Permissive mode (the default)
 * follows the RFC and ignores them, but flags the packet WEIRD.VXLAN_RESERVED_BITS because a sender
 * that sets them is not AWS; strict mode drops it (Suricata's decoder.vxlan strictness knob).
 */
import { VXLAN_FLAG_I, VXLAN_HEADER_BYTES } from './constants.js';
import { DROP, WEIRD, type DropCode } from '../outcomes.js';
import { decodeInnerFrame } from './inner.js';
import type { PacketState } from './packet-state.js';

export { VXLAN_FLAG_I, VXLAN_HEADER_BYTES, VXLAN_PORT } from './constants.js';

/**
 * Decode the VXLAN header at `off` and the inner frame after it, up to `end`. Sets vxlanFlags, vni,
 * innerOff (= off + 8), innerEnd (= end) and everything decodeInnerFrame sets. The caller resets the
 * state first. Returns DROP.OK or the reason to drop: VXLAN_TOO_SHORT, VXLAN_NO_I_FLAG,
 * VXLAN_RESERVED_BITS (strict only), INNER_TOO_SHORT, INNER_TOO_LONG.
 */
export function decodeVxlan(buf: Uint8Array, off: number, end: number, st: PacketState, strict: boolean): DropCode {
  if (end - off < VXLAN_HEADER_BYTES) return DROP.VXLAN_TOO_SHORT;
  const flags = buf[off];
  st.vxlanFlags = flags;
  if ((flags & VXLAN_FLAG_I) === 0) return DROP.VXLAN_NO_I_FLAG;
  st.vni = (buf[off + 4] << 16) | (buf[off + 5] << 8) | buf[off + 6];
  if (((flags & ~VXLAN_FLAG_I) | buf[off + 1] | buf[off + 2] | buf[off + 3] | buf[off + 7]) !== 0) {
    if (strict) return DROP.VXLAN_RESERVED_BITS;
    st.weird |= 1 << WEIRD.VXLAN_RESERVED_BITS;
  }
  return decodeInnerFrame(buf, off + VXLAN_HEADER_BYTES, end, st);
}
