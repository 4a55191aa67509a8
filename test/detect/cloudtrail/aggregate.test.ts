import { describe, expect, it } from 'vitest';
import { FindingAggregator } from '../../../src/detect/cloudtrail/aggregate.js';
import { findingId } from '../../../src/detect/finding-id.js';
import type { FindingInput } from '../../../src/detect/finding.js';

describe('findingId', () => {
  it('is f_ + the first 20 hex digits of SHA-256(kind NUL key) (values from Python hashlib)', () => {
    expect(findingId('mirror-session-created', 'tms-0a1b2c3d4e5f60718')).toBe('f_dee8a6669d60f6f6a39e');
    expect(findingId('mirror-attempt-failed', 'arn:aws:sts::123123123123:assumed-role/MakeStuffPublic')).toBe('f_17e99487cbe65a8c8f52');
  });

  it('separates kind and key so that shifting a boundary changes the id', () => {
    expect(findingId('mirror-session-created', 'x')).not.toBe(findingId('mirror-session-deleted', 'x'));
  });
});

describe('FindingAggregator', () => {
  const input = (over: Partial<FindingInput>): FindingInput => ({
    kind: 'mirror-session-created',
    key: 'tms-0a1b2c3d4e5f60718',
    at: Date.UTC(2024, 2, 5, 10, 0, 0),
    summary: 'first',
    evidence: { eventId: 'e1' },
    sessionId: 'tms-0a1b2c3d4e5f60718',
    vni: 7,
    ...over,
  });

  it('counts repeats of one incident, keeps the earliest evidence and the highest severity, in any order', () => {
    const agg = new FindingAggregator();
    agg.add(input({ at: Date.UTC(2024, 2, 5, 11), summary: 'later', evidence: { eventId: 'e2' }, severity: 'low' }));
    agg.add(input({}));
    agg.add(input({ at: Date.UTC(2024, 2, 5, 12), summary: 'latest', evidence: { eventId: 'e3' } }));
    const [f, ...rest] = agg.findings();
    expect(rest).toEqual([]);
    expect(f).toEqual({
      id: findingId('mirror-session-created', 'tms-0a1b2c3d4e5f60718'),
      kind: 'mirror-session-created',
      severity: 'critical',
      status: 'open',
      firstSeen: '2024-03-05T10:00:00Z',
      lastSeen: '2024-03-05T12:00:00Z',
      count: 3,
      vni: 7,
      sessionId: 'tms-0a1b2c3d4e5f60718',
      summary: 'first',
      evidence: { eventId: 'e1' },
    });
  });

  it('keeps different kinds or keys apart and orders by first occurrence', () => {
    const agg = new FindingAggregator();
    agg.add(input({ key: 'b', at: 2000 }));
    agg.add(input({ kind: 'mirror-session-deleted', at: 1000 }));
    agg.add(input({ key: 'a', at: 3000 }));
    expect(agg.size).toBe(3);
    expect(agg.findings().map((f) => [f.kind, f.firstSeen])).toEqual([
      ['mirror-session-deleted', '1970-01-01T00:00:01Z'],
      ['mirror-session-created', '1970-01-01T00:00:02Z'],
      ['mirror-session-created', '1970-01-01T00:00:03Z'],
    ]);
  });
});
