/** The auditor API: what `serve` calls to build, start and stop it. */
export { buildApi, startApi, type ApiHandle } from './app.js';
export {
  ADMIN_TOKEN_FILE,
  API_DEFAULTS,
  API_ROLES,
  apiConfigSchema,
  configuredTokens,
  parseApiConfig,
  resolveApiTokens,
  sha256Digest,
  type ApiConfig,
  type ApiRole,
  type ApiToken,
} from './config.js';
export type { ApiDeps, ApiDetector, LivePair, ManifestReloadResult } from './deps.js';
export { AuditLog, AUDIT_ACTIONS, type AuditAction, type AuditEntry, type AuditRecord } from './audit.js';
export { openApiDocument, OPENAPI_PATH } from './openapi.js';
export { livePairsFrom, startServeApi, type ServeApiOptions } from './serve.js';
