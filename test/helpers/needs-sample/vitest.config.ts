import { defineConfig } from 'vitest/config';

// The main config's needs machinery, over the sample suite only (test/helpers/skip-summary.test.ts).
export default defineConfig({
  test: {
    include: ['test/helpers/needs-sample/*.check.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    reporters: ['default', './test/helpers/skip-summary-reporter.ts'],
    pool: 'forks',
    maxWorkers: 1,
  },
});
