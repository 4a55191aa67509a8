/** The finding input the detector's store tests record, with overrides: an unauthorized-vni pair 10.0.0.1 / 42 at T0. */
import type { FindingInput } from '../../src/detect/finding.js';

export const T0 = Date.UTC(2025, 0, 1, 12);

export function input(over: Partial<FindingInput> = {}): FindingInput {
  return {
    kind: 'unauthorized-vni',
    key: '10.0.0.1|42',
    at: T0,
    vni: 42,
    sourceIp: '10.0.0.1',
    summary: 'Traffic from 10.0.0.1 on VNI 42',
    evidence: { pair: { sourceIp: '10.0.0.1', vni: 42 } },
    ...over,
  };
}
