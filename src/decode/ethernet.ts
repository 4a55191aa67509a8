/**
 * Ethernet II with 802.1Q / 802.1ad VLAN tags: the first layer of every inner frame we store.
 *
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                   Destination MAC (6 octets)                  |
 * +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                               |                               |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
 * |                     Source MAC (6 octets)                     |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |  TPID 0x8100 / 0x88a8 / 0x9100 | PCP |D|       VLAN ID        |  0..n tags
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+  (IEEE 802.1Q clause 9.6)
 * |           EtherType           |  payload ...
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * A type field below 0x0600 is an 802.3 length (LLC follows); it is recorded as the EtherType and the
 * payload is not decoded further, as for any EtherType other than IPv4/IPv6.
 */
import { ETHERNET_HEADER_BYTES, VLAN_TAG_BYTES, isVlanTpid } from './constants.js';
import { WEIRD } from '../outcomes.js';
import { MAX_VLAN_DEPTH, type PacketState } from './packet-state.js';

/**
 * Decode the Ethernet header at `off`: sets etherType, vlanIds, vlanCount and l3Off (the offset of the
 * payload after the tags, whatever its EtherType). Returns that offset, or -1 when fewer than 14 bytes
 * are captured. Tags beyond MAX_VLAN_DEPTH are left as payload (etherType is then the TPID) and flagged
 * WEIRD.VLAN_DEPTH; a tag cut short by the capture is left the same way.
 */
export function decodeEthernet(buf: Uint8Array, off: number, end: number, st: PacketState): number {
  if (end - off < ETHERNET_HEADER_BYTES) return -1;
  let p = off + 12;
  let type = (buf[p] << 8) | buf[p + 1];
  p += 2;
  let n = 0;
  while (isVlanTpid(type)) {
    if (n === MAX_VLAN_DEPTH) {
      st.weird |= 1 << WEIRD.VLAN_DEPTH;
      break;
    }
    if (end - p < VLAN_TAG_BYTES) break;
    st.vlanIds[n++] = ((buf[p] << 8) | buf[p + 1]) & 0x0fff;
    type = (buf[p + 2] << 8) | buf[p + 3];
    p += VLAN_TAG_BYTES;
  }
  st.vlanCount = n;
  st.etherType = type;
  st.l3Off = p;
  return p;
}
