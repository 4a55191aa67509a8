import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Probes once per run for tshark, scapy, PostgreSQL and the rest (test/helpers/needs.ts).
    globalSetup: ['test/helpers/global-setup.ts'],
    // The default output, then one line naming what was skipped for a missing tool and how to get it.
    reporters: ['default', './test/helpers/skip-summary-reporter.ts'],
    // End-to-end tests start real processes and tshark; give them room on a busy 2-core machine.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
