import { describe, expect, it } from 'vitest';
import { WEIRD } from '../../src/outcomes.js';
import { decodeEthernet } from '../../src/decode/ethernet.js';
import { MAX_VLAN_DEPTH, PacketState } from '../../src/decode/packet-state.js';
import { embed, hex } from './bytes.js';
import { MAC_HEADER } from './frames.js';

function decode(bytes: Uint8Array): { l3: number; st: PacketState; off: number } {
  const { buf, off, end } = embed(bytes);
  const st = new PacketState();
  st.reset();
  const l3 = decodeEthernet(buf, off, end, st);
  return { l3: l3 < 0 ? l3 : l3 - off, st, off };
}

function vlans(st: PacketState): number[] {
  return Array.from(st.vlanIds.subarray(0, st.vlanCount));
}

describe('decodeEthernet', () => {
  it('decodes an untagged Ethernet II header', () => {
    const { l3, st } = decode(hex(`${MAC_HEADER} 08 00  # EtherType IPv4
      45 00 00 14`));
    expect(l3).toBe(14);
    expect(st.etherType).toBe(0x0800);
    expect(st.vlanCount).toBe(0);
    expect(st.weird).toBe(0);
  });

  it('follows an 802.1Q tag and keeps only the 12-bit VLAN ID', () => {
    const { l3, st } = decode(
      hex(`${MAC_HEADER}
        81 00       # TPID 802.1Q
        a0 64       # PCP 5, DEI 0, VLAN 100
        86 dd       # EtherType IPv6
      `),
    );
    expect(l3).toBe(18);
    expect(st.etherType).toBe(0x86dd);
    expect(vlans(st)).toEqual([100]);
  });

  it('follows 802.1ad QinQ (S-tag 0x88a8 then C-tag 0x8100), outermost first', () => {
    const { l3, st } = decode(
      hex(`${MAC_HEADER}
        88 a8 00 0a # S-tag, VLAN 10
        81 00 1f ff # C-tag, DEI set, VLAN 4095
        08 06       # EtherType ARP
      `),
    );
    expect(l3).toBe(22);
    expect(st.etherType).toBe(0x0806);
    expect(vlans(st)).toEqual([10, 4095]);
  });

  it('follows the pre-standard 0x9100 QinQ TPID', () => {
    const { st } = decode(hex(`${MAC_HEADER} 91 00 00 07  # 0x9100, VLAN 7
      81 00 00 08  # 802.1Q, VLAN 8
      08 00        # IPv4`));
    expect(vlans(st)).toEqual([7, 8]);
    expect(st.etherType).toBe(0x0800);
  });

  it(`follows exactly MAX_VLAN_DEPTH (${MAX_VLAN_DEPTH}) tags without a weird`, () => {
    const { l3, st } = decode(hex(`${MAC_HEADER} 81 00 00 01  81 00 00 02  81 00 00 03  81 00 00 04  08 00`));
    expect(vlans(st)).toEqual([1, 2, 3, 4]);
    expect(st.etherType).toBe(0x0800);
    expect(l3).toBe(30);
    expect(st.weird).toBe(0);
  });

  it('leaves a fifth tag as payload and flags WEIRD.VLAN_DEPTH', () => {
    const { l3, st } = decode(hex(`${MAC_HEADER} 81 00 00 01  81 00 00 02  81 00 00 03  81 00 00 04
      81 00 00 05  # fifth tag: not followed
      08 00`));
    expect(vlans(st)).toEqual([1, 2, 3, 4]);
    expect(st.etherType).toBe(0x8100);
    expect(l3).toBe(30);
    expect(st.weird).toBe(1 << WEIRD.VLAN_DEPTH);
  });

  it('stops at a tag cut short by the capture', () => {
    const { l3, st } = decode(hex(`${MAC_HEADER} 81 00  00 64  # tag, VLAN 100
      81 00  00     # second tag, cut after one byte`));
    expect(vlans(st)).toEqual([100]);
    expect(st.etherType).toBe(0x8100);
    expect(l3).toBe(18);
  });

  it('records an 802.3 length field as the EtherType (LLC follows, not decoded)', () => {
    const { st } = decode(hex(`${MAC_HEADER} 00 26  # 802.3 length 38
      42 42 03 00 00`));
    expect(st.etherType).toBe(0x26);
  });

  it('returns -1 for fewer than 14 bytes', () => {
    expect(decode(hex(`${MAC_HEADER} 08`)).l3).toBe(-1);
  });
});
