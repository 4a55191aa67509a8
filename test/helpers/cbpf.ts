/**
 * A classic BPF interpreter (the subset tcpdump and src/ingest/ring-filter.ts emit), so a filter can be run
 * on crafted frames in a test and compared with another program: loads (absolute, indirect, the
 * ldxb 4*([k]&0xf) header-length idiom, and the packet-type ancillary load), jumps against constants and
 * returns. An out-of-bounds load rejects the frame, as the kernel does.
 */
export type Insn = [number, number, number, number];

/** `tcpdump -dd` output ({ 0x28, 0, 0, 0x0000000c },) as instructions. */
export function parseDd(text: string): Insn[] {
  return [...text.matchAll(/\{\s*(0x[0-9a-f]+),\s*(\d+),\s*(\d+),\s*(0x[0-9a-f]+)\s*\}/gi)].map((m) => [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])]);
}

/** Runs `prog` on an Ethernet frame; returns the snap length (0: rejected). pktType is skb->pkt_type (0 PACKET_HOST). */
export function runBpf(prog: readonly Insn[], frame: Uint8Array, pktType = 0): number {
  let A = 0;
  let X = 0;
  const ld = (k: number, size: 1 | 2 | 4): number | null => {
    if (k >>> 0 === 0xfffff004 && size === 1) return pktType;
    if (k < 0 || k + size > frame.length) return null;
    let v = 0;
    for (let i = 0; i < size; i++) v = v * 256 + frame[k + i]!;
    return v >>> 0;
  };
  for (let pc = 0; pc < prog.length; pc++) {
    const [code, jt, jf, k] = prog[pc]!;
    const cls = code & 0x07;
    if (cls === 0x00 /* LD */ || cls === 0x01 /* LDX */) {
      const size = ({ 0x00: 4, 0x08: 2, 0x10: 1 } as Record<number, 1 | 2 | 4>)[code & 0x18]!;
      const mode = code & 0xe0;
      let v: number | null;
      if (mode === 0x20) v = ld(k, size);
      else if (mode === 0x40) v = ld(X + k, size);
      else if (mode === 0xa0) v = frame.length > k ? (frame[k]! & 0x0f) * 4 : null; // msh
      else if (mode === 0x00) v = k >>> 0; // immediate
      else throw new Error(`cbpf: load mode ${code.toString(16)}`);
      if (v === null) return 0;
      if (cls === 0x00) A = v;
      else X = v;
    } else if (cls === 0x05 /* JMP */) {
      const op = code & 0xf0;
      if (op === 0x00) {
        pc += k;
        continue;
      }
      const src = code & 0x08 ? X : k >>> 0;
      const t = op === 0x10 ? A === src : op === 0x20 ? A > src : op === 0x30 ? A >= src : op === 0x40 ? (A & src) !== 0 : null;
      if (t === null) throw new Error(`cbpf: jump ${code.toString(16)}`);
      pc += t ? jt : jf;
    } else if (cls === 0x06 /* RET */) {
      return code & 0x10 ? A : k >>> 0;
    } else throw new Error(`cbpf: class ${cls}`);
  }
  return 0;
}
