/**
 * The collector's GENEVE path (Gateway Load Balancer): the session is the VXLAN packet's source and VNI,
 * the GWLB endpoint and attachment are recorded per file and per observed pair, a move to another
 * endpoint starts a new file and tells the detector once, and plain VXLAN of the same pair joins the
 * same session.
 */
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { Catalog, type CaptureRow } from '../../src/collector/catalog.js';
import { Collector } from '../../src/collector/collector.js';
import { openDb } from '../../src/store/db.js';
import { silentLogger } from '../../src/util/log.js';
import { INNER_TCP4_PADDED, INNER_UDP4, vxlan } from '../decode/frames.js';
import { ATTACHMENT_ID_TEXT, awsOptions, ENDPOINT_ID_TEXT, geneve, gwlbMirror, ipv4Udp } from '../decode/geneve-frames.js';
import { collectorTestSettings } from '../helpers/collector.js';
import { tsharkFrameHex } from '../helpers/oracles.js';
import { describeNeeds } from '../helpers/needs.js';
import { useTmpDir } from '../helpers/tmp.js';

const ip4 = (s: string) => s.split('.').reduce((a, b) => a * 256 + Number(b), 0);

describeNeeds(['tshark'], 'collector: GENEVE from a Gateway Load Balancer', () => {
  const tmp = useTmpDir();

  it('keys the session by the VXLAN packet inside, records the endpoint, and rotates when it changes', async () => {
    const dir = tmp.path;
    const db = openDb(join(dir, 'mirrorguard.db'));
    const catalog = new Catalog(db);
    const seen: string[] = [];
    const collector = new Collector({
      ...collectorTestSettings(dir),
      catalog,
      logger: silentLogger(),
      onNewPair: (ip, vni) => (seen.push(`new ${ip}|${vni}`), { sessionId: null, status: 'unauthorized-vni' }),
      onGwlbEndpoint: (ip, vni, endpoint, attachment) => seen.push(`gwlb ${ip}|${vni} ${endpoint} ${attachment}`),
    });
    const t = 1_800_000_000;
    const a = gwlbMirror('172.31.0.238', 5569041, INNER_UDP4);
    for (let i = 0; i < 3; i++) collector.ingestGeneve(a, 0, a.length, t, i);
    // The same pair straight over VXLAN: same session, no endpoint change.
    const direct = vxlan(5569041, INNER_TCP4_PADDED);
    collector.ingest4(direct, 0, direct.length, ip4('172.31.0.238'), t, 5);
    // Through another endpoint: a new file, the detector told once.
    const other = Buffer.alloc(8, 0xee);
    const b = geneve(ipv4Udp('172.31.0.238', '10.0.0.50', 1, 4789, vxlan(5569041, INNER_UDP4)), { options: awsOptions(other) });
    collector.ingestGeneve(b, 0, b.length, t + 1, 0);
    collector.ingestGeneve(b, 0, b.length, t + 1, 1);
    await collector.close();

    expect(seen).toEqual([
      'new 172.31.0.238|5569041',
      `gwlb 172.31.0.238|5569041 ${ENDPOINT_ID_TEXT} ${ATTACHMENT_ID_TEXT}`,
      `gwlb 172.31.0.238|5569041 vpce-0eeeeeeeeeeeeeeee ${ATTACHMENT_ID_TEXT}`,
    ]);
    expect(collector.counters()).toMatchObject({ written: 6, 'weird.geneve.no_gwlb_options': 0 });
    const rows = db.prepare('SELECT * FROM captures ORDER BY id').all() as CaptureRow[];
    expect(rows.map((r) => [r.source_ip, r.vni, r.packets, r.gwlb_endpoint_id, r.gwlb_attachment_id, r.close_reason])).toEqual([
      ['172.31.0.238', 5569041, 4, ENDPOINT_ID_TEXT, ATTACHMENT_ID_TEXT, 'gwlb-endpoint'],
      ['172.31.0.238', 5569041, 2, 'vpce-0eeeeeeeeeeeeeeee', ATTACHMENT_ID_TEXT, 'shutdown'],
    ]);
    // What is stored is the mirrored frame, not the GENEVE or VXLAN wrapping.
    expect(tsharkFrameHex(join(dir, rows[0]!.path))).toEqual([...Array(3).fill(INNER_UDP4.toString('hex')), INNER_TCP4_PADDED.toString('hex')]);
    const observed = db.prepare('SELECT source_ip, vni, packets, gwlb_endpoint_id FROM observed_sessions').all();
    expect(observed).toEqual([{ source_ip: '172.31.0.238', vni: 5569041, packets: 6, gwlb_endpoint_id: 'vpce-0eeeeeeeeeeeeeeee' }]);
    db.close();
  });

  it('counts GENEVE drops by name and never lets a bad packet disturb the next good one', async () => {
    const dir = tmp.path;
    const db = openDb(join(dir, 'mirrorguard.db'));
    const collector = new Collector({ ...collectorTestSettings(dir), catalog: new Catalog(db), logger: silentLogger() });
    const good = gwlbMirror('172.31.0.238', 7);
    const bad = [
      Buffer.from([0x00, 0x00]),
      geneve(INNER_UDP4.subarray(14), { options: [] }),
      geneve(ipv4Udp('1.2.3.4', '5.6.7.8', 1, 4789, vxlan(7, INNER_UDP4)), { options: [{ cls: 0, type: 0x80, data: Buffer.alloc(4) }] }),
      geneve(ipv4Udp('1.2.3.4', '5.6.7.8', 1, 4789, vxlan(7, INNER_UDP4, 0x00))),
    ];
    for (const p of bad) {
      collector.ingestGeneve(p, 0, p.length, 1_800_000_000, 0);
      collector.ingestGeneve(good, 0, good.length, 1_800_000_000, 1);
    }
    await collector.close();
    expect(collector.counters()).toMatchObject({
      written: 4,
      'decode.geneve.too_short': 1,
      'decode.geneve.not_mirror': 1,
      'decode.geneve.critical_option': 1,
      'decode.vxlan.no_i_flag': 1,
    });
    db.close();
  });
});
