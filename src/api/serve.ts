/**
 * The API as `serve` runs it, in one call: tokens resolved (the generated admin token when none is
 * configured), the app built over the running collector's objects, and started. Returns null when
 * `api.listen` is `off`. The caller closes the handle before closing the collector and the catalog.
 */
import type { Logger } from '../util/log.js';
import { buildApi, startApi, type ApiHandle } from './app.js';
import { resolveApiTokens, type ApiConfig } from './config.js';
import type { ApiDeps, LivePair } from './deps.js';

export interface ServeApiOptions {
  config: ApiConfig;
  dataDir: string;
  logger: Logger;
  deps: Omit<ApiDeps, 'dataDir' | 'logger'>;
}

export async function startServeApi(o: ServeApiOptions): Promise<ApiHandle | null> {
  if (o.config.listen === 'off') return null;
  const tokens = resolveApiTokens(o.config, o.dataDir, o.logger);
  const app = buildApi({ ...o.deps, dataDir: o.dataDir, logger: o.logger }, o.config, tokens);
  return startApi(app, o.config);
}

/** The collector's session table entries (src/collector/session-table.ts) as the API's LivePairs. */
export function* livePairsFrom(
  sessions: Iterable<{
    sourceIp: string;
    vni: number;
    sessionId: string | null;
    packets: number;
    bytes: number;
    firstSec: number;
    lastSec: number;
    gwlbEndpointId?: string | null;
    gwlbAttachmentId?: string | null;
  }>,
): Generator<LivePair> {
  for (const s of sessions) {
    yield {
      sourceIp: s.sourceIp,
      vni: s.vni,
      sessionId: s.sessionId,
      packets: s.packets,
      bytes: s.bytes,
      firstSeenMs: Math.floor(s.firstSec * 1000),
      lastSeenMs: Math.floor(s.lastSec * 1000),
      gwlbEndpointId: s.gwlbEndpointId ?? null,
      gwlbAttachmentId: s.gwlbAttachmentId ?? null,
    };
  }
}
