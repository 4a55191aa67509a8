import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Catalog } from '../../src/collector/catalog.js';
import { Collector } from '../../src/collector/collector.js';
import { openDb } from '../../src/store/db.js';
import { REANCHOR_THRESHOLD_MS, ReceiveClock, Timestamp } from '../../src/util/clock.js';
import { useTmpDir } from '../helpers/tmp.js';

/** A wall clock and a monotonic clock the test moves by hand. */
function fakeClock(wallStartMs: number) {
  const t = { wall: wallStartMs, mono: 1000 };
  const clock = new ReceiveClock({ wallMs: () => t.wall, monoMs: () => t.mono });
  const advance = (ms: number) => {
    t.wall += ms;
    t.mono += ms;
  };
  return { t, clock, advance };
}

const START = Date.UTC(2026, 11, 3, 9, 0, 0);

describe('ReceiveClock', () => {
  it('stamps from the monotonic clock, with sub-millisecond precision', () => {
    const { t, clock } = fakeClock(START);
    const ts = new Timestamp(clock);
    t.mono += 0.000_25; // 250 ns later
    t.wall = START + 0.000_25;
    ts.now();
    expect(ts.sec).toBe(START / 1000);
    expect(ts.nsec).toBeGreaterThanOrEqual(249);
    expect(ts.nsec).toBeLessThanOrEqual(251);
  });

  it('follows a wall-clock step (NTP, a paused VM) once re-anchored, and not before', () => {
    const { t, clock, advance } = fakeClock(START);
    const ts = new Timestamp(clock);
    advance(10_000);
    expect(ts.now().ms()).toBe(START + 10_000);

    t.wall += 3_600_000; // NTP steps the wall clock an hour ahead; the monotonic clock does not move
    expect(ts.now().ms()).toBe(START + 10_000); // the drift the issue describes
    expect(clock.reanchor()).toBe(3_600_000);
    expect(ts.now().ms()).toBe(START + 3_610_000);
    expect(clock.reanchors).toBe(1);

    t.mono += 60_000; // a paused VM: the wall clock moved on, the monotonic clock stood still
    t.wall += 60_000 + 5 * 60_000;
    expect(clock.reanchor()).toBe(300_000);
    expect(ts.now().ms()).toBe(START + 3_610_000 + 360_000);

    t.wall -= 7_200_000; // a step backwards
    expect(clock.reanchor()).toBe(-7_200_000);
    expect(ts.now().ms()).toBe(START + 3_610_000 + 360_000 - 7_200_000);
  });

  it('ignores differences within the wall clock\'s millisecond resolution, so timestamps do not jitter', () => {
    const { t, clock } = fakeClock(START);
    t.wall += REANCHOR_THRESHOLD_MS; // at the threshold: noise
    expect(clock.reanchor()).toBe(0);
    expect(clock.reanchors).toBe(0);
  });

  it('the system clock agrees with Date.now()', () => {
    const ts = new Timestamp().now();
    expect(Math.abs(ts.ms() - Date.now())).toBeLessThan(50);
  });
});

describe('Collector flush tick', () => {
  const tmp = useTmpDir();

  it('re-anchors the receive clock and logs the step, rate-limited', () => {
    const lines: { msg: string; stepMs?: number }[] = [];
    const logger = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s)) });
    const { t, clock } = fakeClock(START);
    const db = openDb(join(tmp.path, 'mirrorguard.db'));
    const collector = new Collector({
      dataDir: tmp.path,
      catalog: new Catalog(db),
      logger,
      strictVxlan: false,
      vxlanPort: 4789,
      maxSessions: 4,
      rotateBytes: 1 << 20,
      rotateSeconds: 60,
      idleCloseSeconds: 30,
      flushIntervalMs: 1000,
      bufferBytes: 262_160,
      queueBytes: 4 << 20,
      nowSec: () => t.wall / 1000,
      clock,
    });
    const ts = new Timestamp(clock);
    t.wall += 90_000;
    collector.tick();
    expect(ts.now().ms()).toBe(START + 90_000);
    t.wall += 5_000;
    collector.tick();
    expect(ts.now().ms()).toBe(START + 95_000);
    collector.tick(); // no step: nothing to log
    const steps = lines.filter((l) => l.msg.includes('re-anchored'));
    expect(steps).toHaveLength(1); // the second step inside the same minute is counted, not logged
    expect(steps[0]!.stepMs).toBe(90_000);
    db.close();
  });
});
