/**
 * The detector writes behind an ordered queue (src/detect/writes.ts): a test that calls `onNewPair`
 * and then reads the findings must wait for the writes first. `settledReads` wraps the findings so
 * that every read waits for `settled()`, as the API's reads wait for the catalog queue in test/api.
 */
const READS = new Set<PropertyKey>(['get', 'list', 'counts', 'openFindings']);

export function settledReads<T extends object>(target: T, settled: () => Promise<unknown>): T {
  return new Proxy(target, {
    get(t, k) {
      const v = Reflect.get(t, k, t) as unknown;
      if (typeof v !== 'function') return v;
      const fn = v as (...a: unknown[]) => unknown;
      if (!READS.has(k)) return fn.bind(t);
      return async (...a: unknown[]) => {
        await settled();
        return fn.apply(t, a);
      };
    },
  });
}

/** A detector's findings, read after its queued writes. */
export function settledStore<T extends object>(d: { store: T; settled(): Promise<unknown> }): T {
  return settledReads(d.store, () => d.settled());
}
