#!/usr/bin/env node
// Fleet first boot (mirrorguard-fleet.yaml): split the catalog URL, read on stdin as Secrets Manager
// holds it (postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=verify-full), into what `serve` reads:
// the URL without its password on stdout (store.url in config.yaml) and the password, decoded, into the
// file named by the one argument, mode 0600 (store.passwordFile). The secret is never on a command line.
// Exit 1, naming the problem and never the URL, when the input is not a postgres:// URL with a password.
import { writeFileSync } from 'node:fs';

const out = process.argv[2];
if (process.argv.length !== 3) {
  process.stderr.write('usage: store-url.mjs PASSWORD-FILE <url\n');
  process.exit(2);
}
let text = '';
process.stdin.setEncoding('utf8');
for await (const chunk of process.stdin) text += chunk;
let url;
try {
  url = new URL(text.trim());
} catch {
  url = null;
}
if (url === null || !/^postgres(ql)?:$/.test(url.protocol) || url.hostname === '') {
  process.stderr.write('store-url: the catalog secret is not a postgres://USER:PASSWORD@HOST:PORT/DATABASE URL\n');
  process.exit(1);
}
if (url.password === '') {
  process.stderr.write('store-url: the catalog URL has no password (postgres://USER:PASSWORD@HOST...)\n');
  process.exit(1);
}
writeFileSync(out, decodeURIComponent(url.password), { mode: 0o600 });
url.password = '';
process.stdout.write(`${url.href}\n`);
