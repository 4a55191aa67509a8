/**
 * YAML parsed with positions kept, so a problem found later (schema validation) can be reported as
 * `FILE:LINE: field: message`. Used by the config loader and the manifest loader.
 */
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import type { Problem } from '../errors.js';

export type PathSegment = string | number;

export interface YamlSource {
  file: string;
  value: unknown;
  /** Syntax errors and warnings the parser raised, with lines. Empty when the text parsed. */
  syntaxProblems: Problem[];
  /** The 1-based line of the node at `path`, or of its nearest existing ancestor. */
  lineOf(path: readonly PathSegment[]): number | undefined;
}

export function parseYamlWithLines(text: string, file: string): YamlSource {
  const lineCounter = new LineCounter();
  const doc: Document = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const syntaxProblems: Problem[] = doc.errors.map((e) => ({
    file,
    line: e.linePos?.[0]?.line ?? (e.pos ? lineCounter.linePos(e.pos[0]).line : undefined),
    message: e.message.split('\n')[0]!,
  }));
  const lineAt = (offset: number | undefined): number | undefined =>
    offset === undefined ? undefined : lineCounter.linePos(offset).line;

  return {
    file,
    value: syntaxProblems.length ? undefined : doc.toJS({ maxAliasCount: 100 }),
    syntaxProblems,
    lineOf(path) {
      let node: unknown = doc.contents;
      let line = lineAt((node as Node | null)?.range?.[0]);
      for (const seg of path) {
        if (isMap(node)) {
          const pair = node.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === seg);
          if (!pair) return line;
          line = lineAt((pair.key as Node | null)?.range?.[0]) ?? line;
          node = pair.value;
        } else if (isSeq(node) && typeof seg === 'number') {
          node = node.items[seg];
          if (node === undefined) return line;
          line = lineAt((node as Node).range?.[0]) ?? line;
        } else {
          return line;
        }
      }
      return line;
    },
  };
}

/** `sessions[2].vni` from ['sessions', 2, 'vni']. */
export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out ? `.${seg}` : seg;
  }
  return out;
}
