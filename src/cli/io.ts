/** Where a command reads and writes; tests pass their own to capture output without a child process. */
export interface CliIo {
  stdout: { write(s: string): unknown };
  /** isTTY and columns drive progress bars (cloudtrail scan); absent means not a terminal. */
  stderr: { write(s: string): unknown; isTTY?: boolean; columns?: number };
  stdin?: NodeJS.ReadableStream;
}

export const PROCESS_IO: CliIo = { stdout: process.stdout, stderr: process.stderr };
