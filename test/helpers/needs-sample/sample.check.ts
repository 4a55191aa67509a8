/**
 * A tiny suite for test/helpers/skip-summary.test.ts, run by a vitest of its own (vitest.config.ts
 * beside it; the main run's `*.test.ts` pattern does not include it). One test needs tshark, one runs
 * anywhere, one checks with tshark only if it is there.
 */
import { expect, it } from 'vitest';
import { checkIfHave, itNeeds } from '../needs.js';
import { tshark } from '../oracles.js';

itNeeds(['tshark'], 'runs tshark', () => {
  expect(tshark(['--version']).status).toBe(0);
});

it('runs anywhere', () => {
  expect(1 + 1).toBe(2);
});

it('runs anywhere, with tshark as a second opinion', () => {
  expect(2 * 2).toBe(4);
  checkIfHave('tshark', () => expect(tshark(['--version']).status).toBe(0));
});
