/**
 * Whether an error from the store means the store is away (or too busy to answer) rather than that the
 * request was wrong: the API answers those 503 MG_ERR_STORE_UNREACHABLE with Retry-After instead of a
 * 500, and the write queue retries them. PostgreSQL: no connection (refused, reset, timed out, name not
 * resolved), a connection the server closed, the pool's connect timeout, the client's query timeout,
 * SQLSTATE classes 08 (connection exception) and 57P (operator intervention: shutdown, crash recovery),
 * 53300 (too many connections). SQLite: the file is locked past busy_timeout, cannot be opened, or an
 * I/O error.
 */
const NET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
const SQLITE_CODES = new Set(['SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_CANTOPEN', 'SQLITE_IOERR']);
const PG_MESSAGES = /^(Connection terminated|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|Client was closed|Cannot use a pool after calling end)/;

export function isStoreOutage(e: unknown): boolean {
  if (e === null || typeof e !== 'object') return false;
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (NET_CODES.has(code) || SQLITE_CODES.has(code) || code.startsWith('SQLITE_IOERR')) return true;
    if (/^08[0-9A-Z]{3}$/.test(code) || /^57P0[0-9]$/.test(code) || code === '53300') return true;
  }
  const message = (e as { message?: unknown }).message;
  return typeof message === 'string' && PG_MESSAGES.test(message);
}
