/**
 * `mirrorguard store status|migrate|copy`: where a store stands (engine, schema version, pending
 * migrations), applying migrations, and moving a single target's SQLite history into a fleet's
 * PostgreSQL (docs/operations.md, Store). URLs are shown without their password.
 */
import { join } from 'node:path';
import { CATALOG_FILE } from '../collector/layout.js';
import { existsSync } from 'node:fs';
import { EXIT, MgError } from '../errors.js';
import { copyStore } from '../store/copy.js';
import { defaultNodeId, openStore, type Store, type StoreOptions } from '../store/store.js';
import { parseStoreUrl } from '../store/url.js';
import { commandHelp, parseCommand, usageError, type CommandSpec, type FlagSpec } from './flags.js';
import { PROCESS_IO, type CliIo } from './io.js';

const FLAGS: FlagSpec[] = [
  { name: 'store', kind: 'string', arg: 'URL', help: 'sqlite:PATH or postgres://user@host:port/db (default sqlite:DATA_DIR/mirrorguard.db)' },
  { name: 'data-dir', kind: 'string', arg: 'DIR', help: 'the data directory whose SQLite store to use when --store is not given (default ./data)' },
  { name: 'password-file', kind: 'string', arg: 'FILE', help: 'PostgreSQL password, when neither the URL nor PGPASSWORD has one' },
  { name: 'tls-ca', kind: 'string', arg: 'FILE', help: 'PEM CA for the PostgreSQL server certificate (TLS, verify-full)' },
  { name: 'node-id', kind: 'string', arg: 'ID', help: 'copy: the node id for rows that have none (default: the host name)' },
  { name: 'from', kind: 'string', arg: 'URL', help: 'copy: the source store (sqlite:PATH)' },
  { name: 'to', kind: 'string', arg: 'URL', help: 'copy: the destination store (postgres://...)' },
  { name: 'json', kind: 'boolean', help: 'print JSON' },
];

export const SPEC: CommandSpec = {
  name: 'store',
  usage: ['store status [--store URL] [--json]', 'store migrate [--store URL]', 'store copy --from sqlite:PATH --to postgres://... [--node-id ID]'],
  description: 'Look after the store: SQLite on a single target, PostgreSQL shared by a fleet (docs/operations.md).',
  subcommands: [
    { name: 'status', summary: 'the engine, the schema version and the migrations still to apply (changes nothing)' },
    { name: 'migrate', summary: 'apply pending migrations (serve does this at start too)' },
    { name: 'copy', summary: "copy a single target's history into another store; rerunning it copies nothing twice" },
  ],
  sections: [{ title: 'options', flags: FLAGS }],
  epilogue: 'Exit status: 0 done; 64 usage; 69 PostgreSQL unreachable; 74 a migration failed; 78 a bad store URL.\n',
};

type Values = { store?: string; 'data-dir'?: string; 'password-file'?: string; 'tls-ca'?: string; 'node-id'?: string; from?: string; to?: string; json?: boolean };

function storeOpts(url: string, v: Values, migrate: boolean): StoreOptions {
  return {
    url,
    migrate,
    ...(v['password-file'] !== undefined ? { passwordFile: v['password-file'] } : {}),
    ...(v['tls-ca'] !== undefined ? { tlsCa: v['tls-ca'] } : {}),
    ...(v['node-id'] !== undefined ? { nodeId: v['node-id'] } : {}),
  };
}

export async function run(argv: string[], io: CliIo = PROCESS_IO): Promise<number> {
  const parsed = parseCommand(argv, SPEC);
  if (parsed.help || argv[0] === 'help') {
    io.stdout.write(commandHelp(SPEC));
    return EXIT.OK;
  }
  const v = parsed.values as Values;
  const out = (s: string) => void io.stdout.write(`${s}\n`);
  const url = v.store ?? `sqlite:${join(v['data-dir'] ?? './data', CATALOG_FILE)}`;
  const sub = parsed.subcommand?.name;
  if (parsed.positionals.length > 1) throw usageError(SPEC, `unexpected argument '${parsed.positionals[1]}'`);
  switch (sub) {
    case 'status': {
      // Looking must not create: a mistyped path would become an empty database reported as version 0.
      const u = parseStoreUrl(url);
      if (u.engine === 'sqlite' && !existsSync(u.target)) throw new MgError('MG_ERR_CATALOG_OPEN', `${u.target}: no such file; is this the collector's data directory?`);
      const store = await openStore(storeOpts(url, v, false));
      try {
        const st = await store.status();
        if (v.json) out(JSON.stringify({ url: store.display, ...st }));
        else {
          out(`${store.display}: ${st.engine}, schema version ${st.version} of ${st.latest}`);
          for (const p of st.pending) out(`  pending ${p.version}: ${p.name}`);
          if (st.pending.length === 0) out('  up to date');
        }
        return EXIT.OK;
      } finally {
        await store.close();
      }
    }
    case 'migrate': {
      const store = await openStore(storeOpts(url, v, false));
      try {
        const applied = await store.migrate();
        const st = await store.status();
        if (v.json) out(JSON.stringify({ url: store.display, applied, version: st.version }));
        else out(applied.length ? `${store.display}: applied ${applied.join(', ')}; now at version ${st.version}` : `${store.display}: up to date (version ${st.version})`);
        return EXIT.OK;
      } finally {
        await store.close();
      }
    }
    case 'copy': {
      if (v.from === undefined || v.to === undefined) throw usageError(SPEC, 'copy needs --from and --to');
      const src = parseStoreUrl(v.from);
      if (src.engine !== 'sqlite') throw usageError(SPEC, '--from: a sqlite:PATH store');
      let from: Store | undefined;
      let to: Store | undefined;
      try {
        from = await openStore(storeOpts(v.from, v, true));
        to = await openStore(storeOpts(v.to, v, true));
        const r = await copyStore(from.engine, to.engine, v['node-id'] ?? defaultNodeId());
        if (v.json) out(JSON.stringify({ from: from.display, to: to.display, ...r }));
        else {
          out(`copied ${from.display} -> ${to.display}`);
          for (const [t, c] of Object.entries(r.tables)) out(`  ${t.padEnd(18)} read ${c.read}, inserted ${c.inserted}`);
        }
        return EXIT.OK;
      } finally {
        await from?.close();
        await to?.close();
      }
    }
    default:
      throw usageError(SPEC, 'a command is required: status, migrate or copy');
  }
}

