/**
 * `store.url`: `sqlite:PATH` (relative to the working directory; the default is
 * `DATA_DIR/mirrorguard.db`) or `postgres://user[:password]@host[:port]/database[?sslmode=...]`
 * (`postgresql://` too). The password may come from the URL, `PGPASSWORD` or `store.passwordFile`;
 * it never appears in a log line or an error: `redactUrl` is what they show.
 */
import { MgError } from '../errors.js';
import type { EngineName } from './engine.js';

export interface StoreUrl {
  engine: EngineName;
  /** sqlite: the file path (`:memory:` for tests); postgres: the URL as given. */
  target: string;
  /** The URL with any password replaced by `***`. */
  display: string;
}

export function parseStoreUrl(url: string): StoreUrl {
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (path === '') throw new MgError('MG_ERR_STORE_URL', `store.url ${JSON.stringify(url)}: sqlite: needs a file path`);
    return { engine: 'sqlite', target: path, display: url };
  }
  if (/^postgres(ql)?:\/\//.test(url)) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new MgError('MG_ERR_STORE_URL', `store.url ${redactUrl(url)}: not a URL`);
    }
    if (u.pathname === '/' || u.pathname === '') throw new MgError('MG_ERR_STORE_URL', `store.url ${redactUrl(url)}: name the database (postgres://user@host:port/DATABASE)`);
    return { engine: 'postgres', target: url, display: redactUrl(url) };
  }
  throw new MgError('MG_ERR_STORE_URL', `store.url ${JSON.stringify(redactUrl(url))}: expected sqlite:PATH or postgres://user@host:port/database`);
}

/** The URL without its password (and without a `password=` query parameter). */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@?#]*):[^@/?#]*@/i, '$1:***@').replace(/([?&]password=)[^&#]*/gi, '$1***');
}

/** Replace every occurrence of `secret` in `text` (for error messages a driver builds). */
export function redactSecret(text: string, secret: string | undefined): string {
  if (!secret) return text;
  return text.split(secret).join('***');
}
