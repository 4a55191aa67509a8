/**
 * A string as one flat run of characters. V8 builds a template literal or a `+` chain of 13 or more
 * characters as a tree of the parts (a cons string: one 32-byte node per join, each part kept), and only
 * flattens it when something reads it whole. A string that is kept for as long as a session lives (a
 * capture file's path, held by the session writer, the file writer and the disk queue; a source address)
 * costs several times its length that way: at 10,000 sessions, 2.2 MB of path parts (issue 16). Off the
 * packet path only: this copies.
 *
 * UTF-16 round trip, so every string, lone surrogates included, comes back equal.
 */
export function flatString(s: string): string {
  return s.length < 13 ? s : Buffer.from(s, 'utf16le').toString('utf16le');
}
