// `--help` for the benchmark scripts: print the script's leading comment (what it measures, its options).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** When the command line asks for help, print the header comment of the script at `url` and exit 0. */
export function helpFromHeader(url) {
  if (!process.argv.includes('--help') && !process.argv.includes('-h')) return;
  const lines = readFileSync(fileURLToPath(url), 'utf8').split('\n');
  const head = [];
  for (const l of lines) {
    if (l.startsWith('#!')) continue;
    if (!l.startsWith('//')) break;
    head.push(l.replace(/^\/\/ ?/, ''));
  }
  process.stdout.write(`${head.join('\n')}\n`);
  process.exit(0);
}
