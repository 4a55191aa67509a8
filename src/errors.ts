/**
 * One registry of coded errors (the fastify/undici pattern): every error a user can see has a literal
 * `MG_ERR_<AREA>_<WHAT>` code, a default message, an exit code for the CLI and, where it reaches HTTP,
 * a status. docs/errors.md documents every code; test/errors.test.ts checks the two agree, both ways.
 *
 * Three tiers (docs/architecture.md): packets never throw (they are counted and dropped, see
 * src/outcomes.ts); startup problems throw an MgError and the CLI exits non-zero;
 * asynchronous I/O failures are counted and logged at a limited rate, not thrown.
 */

/** Exit codes follow sysexits(3) so scripts can tell usage, data and environment problems apart. */
export const EXIT = {
  OK: 0,
  FINDINGS: 1,
  INPUT_UNREADABLE: 2,
  USAGE: 64,
  DATA: 65,
  NO_INPUT: 66,
  UNAVAILABLE: 69,
  SOFTWARE: 70,
  OS: 71,
  CANT_CREATE: 73,
  IO: 74,
  CONFIG: 78,
} as const;

interface ErrorDef {
  readonly message: string;
  readonly exit: number;
  readonly status?: number;
}

export const ERRORS = {
  // --- cli ---------------------------------------------------------------------------------------
  MG_ERR_CLI_USAGE: { message: 'invalid command line', exit: EXIT.USAGE },
  MG_ERR_CLI_UNKNOWN_COMMAND: { message: 'unknown command', exit: EXIT.USAGE },

  // --- config ------------------------------------------------------------------------------------
  MG_ERR_CONFIG_READ: { message: 'cannot read the config file', exit: EXIT.NO_INPUT },
  MG_ERR_CONFIG_PARSE: { message: 'the config file is not valid YAML', exit: EXIT.CONFIG },
  MG_ERR_CONFIG_INVALID: { message: 'invalid configuration', exit: EXIT.CONFIG },

  // --- manifest ----------------------------------------------------------------------------------
  MG_ERR_MANIFEST_READ: { message: 'cannot read the manifest', exit: EXIT.NO_INPUT },
  MG_ERR_MANIFEST_INVALID: { message: 'invalid manifest', exit: EXIT.CONFIG },
  MG_ERR_MANIFEST_EXISTS: { message: 'refusing to overwrite an existing manifest', exit: EXIT.CANT_CREATE },
  // detector (src/detect, src/cli/manifest.ts): `manifest init --out` could not write its file
  MG_ERR_MANIFEST_WRITE: { message: 'cannot write the manifest', exit: EXIT.CANT_CREATE },

  // --- ingest ------------------------------------------------------------------------------------
  MG_ERR_INGEST_BIND: { message: 'cannot bind the receive socket', exit: EXIT.OS },
  MG_ERR_INGEST_LIBPCAP_UNAVAILABLE: { message: 'libpcap capture is not available', exit: EXIT.UNAVAILABLE },
  MG_ERR_INGEST_NATIVE_UNAVAILABLE: { message: 'the native receiver is not built', exit: EXIT.UNAVAILABLE },
  MG_ERR_INGEST_RING: { message: 'cannot open the capture ring', exit: EXIT.UNAVAILABLE },

  // --- capture files (decap, replay, pcap reader) -------------------------------------------------
  MG_ERR_CAPTURE_READ: { message: 'cannot read the capture file', exit: EXIT.NO_INPUT },
  MG_ERR_CAPTURE_FORMAT: { message: 'not a pcap or pcapng file', exit: EXIT.DATA },
  MG_ERR_CAPTURE_LINKTYPE: { message: 'unsupported link type in the capture file', exit: EXIT.DATA },

  // --- decode: capture filters (src/decode/filter.ts) ------------------------------------------
  MG_ERR_FILTER_SYNTAX: { message: 'invalid capture filter', exit: EXIT.USAGE, status: 400 },

  // --- storage -----------------------------------------------------------------------------------
  MG_ERR_DATA_DIR: { message: 'the data directory is not usable', exit: EXIT.CANT_CREATE },
  MG_ERR_CATALOG_OPEN: { message: 'cannot open the catalog database', exit: EXIT.IO },
  MG_ERR_STORE_URL: { message: 'store.url (or its password file or TLS CA) is not usable', exit: EXIT.CONFIG },
  MG_ERR_STORE_UNREACHABLE: { message: 'the store (PostgreSQL) cannot be reached', exit: EXIT.UNAVAILABLE, status: 503 },
  MG_ERR_STORE_MIGRATE: { message: 'a store migration failed', exit: EXIT.IO },
  MG_ERR_STORE_COPY_LEDGER: { message: 'store copy: the destination already holds a different evidence ledger', exit: EXIT.DATA },

  // --- evidence ledger (src/ledger, `keys init`, `verify`) ----------------------------------------
  MG_ERR_KEY_READ: { message: 'cannot read the Ed25519 key', exit: EXIT.NO_INPUT },
  MG_ERR_KEY_EXISTS: { message: 'refusing to overwrite an existing key file', exit: EXIT.CANT_CREATE },
  MG_ERR_KEY_WRITE: { message: 'cannot write the key file', exit: EXIT.CANT_CREATE },
  MG_ERR_LEDGER_READ: { message: 'cannot read the ledger export', exit: EXIT.NO_INPUT },
  MG_ERR_VERIFY_FAILED: { message: 'verification failed', exit: EXIT.FINDINGS },

  // --- detector ----------------------------------------------------------------------------------
  MG_ERR_CLOUDTRAIL_READ: { message: 'cannot read a CloudTrail input', exit: EXIT.INPUT_UNREADABLE },
  MG_ERR_CLOUDTRAIL_FORMAT: { message: 'not a CloudTrail event, Records file, EventBridge event or JSON lines', exit: EXIT.INPUT_UNREADABLE, status: 400 },
  MG_ERR_INVENTORY_READ: { message: 'cannot read the inventory input', exit: EXIT.INPUT_UNREADABLE },
  MG_ERR_INVENTORY_AWS: { message: 'the EC2 DescribeTrafficMirrorSessions call failed', exit: EXIT.UNAVAILABLE },

  // --- alerts ------------------------------------------------------------------------------------
  MG_ERR_WEBHOOK_CONFIG: { message: 'invalid webhook configuration', exit: EXIT.CONFIG },
  MG_ERR_WEBHOOK_SEND: { message: 'the webhook test delivery failed', exit: EXIT.UNAVAILABLE },
  MG_ERR_WEBHOOK_UNKNOWN: { message: 'no webhook by that name', exit: EXIT.DATA },

  // --- api ---------------------------------------------------------------------------------------
  MG_ERR_API_BAD_REQUEST: { message: 'bad request', exit: EXIT.USAGE, status: 400 },
  MG_ERR_API_UNAUTHORIZED: { message: 'a valid bearer token is required', exit: EXIT.USAGE, status: 401 },
  MG_ERR_API_FORBIDDEN: { message: 'this token does not have the role for this request', exit: EXIT.USAGE, status: 403 },
  MG_ERR_API_NOT_FOUND: { message: 'not found', exit: EXIT.USAGE, status: 404 },
  MG_ERR_API_RANGE: { message: 'range not satisfiable', exit: EXIT.USAGE, status: 416 },
  MG_ERR_API_BUSY: { message: 'too many concurrent extractions', exit: EXIT.UNAVAILABLE, status: 429 },
  MG_ERR_API_TOO_LARGE: { message: 'request body too large', exit: EXIT.USAGE, status: 413 },
  MG_ERR_API_TLS: { message: 'cannot load the TLS certificate or key', exit: EXIT.CONFIG },
  MG_ERR_API_BIND: { message: 'cannot listen on the API address', exit: EXIT.OS },
  // api (src/api): conditions the routes answer beyond the ones above
  MG_ERR_API_CONFLICT: { message: 'the request conflicts with the server state', exit: EXIT.USAGE, status: 409 },
  MG_ERR_API_MEDIA_TYPE: { message: 'unsupported content type', exit: EXIT.USAGE, status: 415 },
  MG_ERR_API_MANIFEST_REJECTED: { message: 'manifest reload refused; the manifest in force is kept', exit: EXIT.CONFIG, status: 422 },
  MG_ERR_API_INTEGRITY: { message: 'a capture file does not match its catalog entry', exit: EXIT.DATA, status: 500 },
  MG_ERR_API_INTERNAL: { message: 'internal error', exit: EXIT.SOFTWARE, status: 500 },
} as const satisfies Record<string, ErrorDef>;

export type ErrorCode = keyof typeof ERRORS;

/** Where a problem is in a file the user wrote; printed as `FILE:LINE: field: message`. */
export interface Problem {
  file?: string;
  line?: number;
  field?: string;
  message: string;
}

export function formatProblem(p: Problem): string {
  const where = p.file ? `${p.file}${p.line ? `:${p.line}` : ''}: ` : '';
  const field = p.field ? `${p.field}: ` : '';
  return `${where}${field}${p.message}`;
}

export class MgError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: number;
  readonly statusCode: number | undefined;
  readonly problems: readonly Problem[];

  constructor(code: ErrorCode, detail?: string, opts: { problems?: Problem[]; cause?: unknown } = {}) {
    const def: ErrorDef = ERRORS[code];
    super(detail ? `${def.message}: ${detail}` : def.message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'MgError';
    this.code = code;
    this.exitCode = def.exit;
    this.statusCode = def.status;
    this.problems = opts.problems ?? [];
  }

  /** The message a CLI prints: the headline, then one `FILE:LINE: field: message` line per problem. */
  describe(): string {
    const lines = [`${this.code}: ${this.message}`];
    for (const p of this.problems) lines.push(formatProblem(p));
    return lines.join('\n');
  }
}

export function isMgError(e: unknown): e is MgError {
  return e instanceof MgError;
}
