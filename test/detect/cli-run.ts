/** Run a command module as src/cli/main.ts does: an MgError becomes `mirrorguard: describe()` on stderr and its exit code. */
import { isMgError } from '../../src/errors.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

type Io = { stdout: { write(s: string): unknown }; stderr: { write(s: string): unknown } };

export async function runCli(mod: { run(argv: string[], io?: Io): Promise<number> }, argv: string[]): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const io: Io = { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) } };
  let code: number;
  try {
    code = await mod.run(argv, io);
  } catch (e) {
    if (!isMgError(e)) throw e;
    stderr += `mirrorguard: ${e.describe()}\n`;
    code = e.exitCode;
  }
  return { code, stdout, stderr };
}
