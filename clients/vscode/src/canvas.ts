// Pure mapping from `diffusion/canvas` notifications to what the preview draws. No `vscode` import: unit-tested in node.

export interface LspPosition {
  line: number;
  character: number; // UTF-16 code units, as VS Code and LSP count them
}

export interface LspRange {
  start: LspPosition;
  end: LspPosition;
}

/** One forward pass of the denoiser, as the server streams it. */
export interface CanvasParams {
  uri: string;
  version: number;
  id: number | string; // the JSON-RPC id of the request this canvas belongs to
  step: number;
  nfe: number;
  range: LspRange; // completion: empty range at the cursor; rewrite: the selected range
  text: string; // canvas so far, each still-masked token drawn as "·"
  masks: [number, number][]; // [start, end) ranges of `text` still masked, in UTF-16 code units
  done: boolean;
  block?: number; // which block of a block-autoregressive fill
  remasked?: number; // decided tokens sent back to masks this step (self-correction)
  reason?: string | null; // on the last canvas (done): why the server refused the result, which is then not shown
}

export type SegmentKind = 'text' | 'mask' | 'mark'; // mark: drawn faint, not part of the text (a line break "⏎")

/** A run of the preview drawn in one style. */
export interface Segment {
  kind: SegmentKind;
  text: string;
}

export interface PreviewOptions {
  tabSize: number;
  maxChars: number; // an after-text decoration is one line; long canvases are cut with "…"
}

export const DEFAULT_PREVIEW: PreviewOptions = { tabSize: 4, maxChars: 160 };

const NBSP = '\u00a0'; // decoration content collapses ordinary spaces
const NEWLINE_MARK = ' ⏎ ';

/**
 * Splits `text` into text and mask runs. Mask offsets are UTF-16 code units, like LSP positions and JS strings;
 * overlapping or unsorted ranges are tolerated, and a range never splits a surrogate pair.
 */
export function toSegments(text: string, masks: readonly (readonly [number, number])[]): Segment[] {
  const masked = new Array<boolean>(text.length).fill(false);
  for (const [start, end] of masks) {
    for (let i = Math.max(0, start); i < Math.min(end, text.length); i++) masked[i] = true;
  }
  const segments: Segment[] = [];
  for (let i = 0; i < text.length; i++) {
    const pair = isHighSurrogate(text.charCodeAt(i)) && i + 1 < text.length;
    push(segments, masked[i] || (pair && masked[i + 1]) ? 'mask' : 'text', pair ? text.slice(i, i + 2) : text[i]);
    if (pair) i++;
  }
  return segments;
}

/**
 * Lays segments out on one line for an after-text decoration: line breaks become a "⏎" mark (with the next line's
 * indentation folded into it), spaces and tabs become non-breaking spaces, and the result is cut at `maxChars`.
 */
export function inlineSegments(segments: readonly Segment[], options: PreviewOptions = DEFAULT_PREVIEW): Segment[] {
  const out: Segment[] = [];
  let length = 0;
  let afterNewline = false;
  for (const segment of segments) {
    for (const ch of segment.text) {
      if (length >= options.maxChars) {
        push(out, 'text', '…');
        return out;
      }
      if (ch === '\r') continue;
      if (ch === '\n') {
        push(out, 'mark', NEWLINE_MARK);
        length += NEWLINE_MARK.length;
        afterNewline = true;
        continue;
      }
      if (afterNewline && (ch === ' ' || ch === '\t')) continue;
      afterNewline = false;
      const shown = ch === '\t' ? NBSP.repeat(options.tabSize) : ch === ' ' ? NBSP : ch;
      push(out, segment.kind, shown);
      length += shown.length;
    }
  }
  return out;
}

/** What the completion preview draws: the canvas on one line at the cursor. */
export interface CompletionPreview {
  anchor: LspPosition;
  segments: Segment[];
  lines: number; // lines of the canvas text, for the hover
  maskedCount: number; // still-masked characters
}

export function completionPreview(canvas: CanvasParams, options: PreviewOptions = DEFAULT_PREVIEW): CompletionPreview {
  const segments = toSegments(canvas.text, canvas.masks);
  return {
    anchor: canvas.range.start,
    segments: inlineSegments(segments, options),
    lines: canvas.text.split('\n').length,
    maskedCount: segments.filter((s) => s.kind === 'mask').reduce((n, s) => n + s.text.length, 0),
  };
}

/** One row of the rewrite preview: segments drawn after the end of a document line. */
export interface PreviewRow {
  anchor: LspPosition; // the end of the document line the row is drawn on
  segments: Segment[];
}

/** What the rewrite preview draws: the old text struck through over `struck`, the new text as rows beside it. */
export interface RewritePreview {
  struck: LspRange;
  rows: PreviewRow[];
}

/** Where the rewrite preview's column starts, past the longest line it is drawn beside (in columns). */
const REWRITE_GAP = 3;

/**
 * The rewrite canvas laid out line by line: its line i is drawn after the end of document line `range.start.line + i`,
 * all of them from one column past the longest of those lines, so the new text reads as a block beside the old one,
 * with its indentation (the first line's taken from the text before the selection). The first row starts with "→",
 * the others with "│". A longer text goes on beside blank lines below the range; what would go beside other code, or
 * past the end of the document, is folded into the last row with "⏎" marks. `lineText(n)` is document line n,
 * undefined past the end.
 */
export function rewritePreview(
  canvas: CanvasParams,
  lineText: (line: number) => string | undefined,
  options: PreviewOptions = DEFAULT_PREVIEW,
): RewritePreview {
  const first = canvas.range.start.line;
  let lines = splitLines(toSegments(canvas.text, canvas.masks));
  // Rows go beside the replaced lines, then beside blank lines below them; beside code that is not replaced, a row
  // would read as that code's rewrite: there, and past the end of the document, the rest folds into the last row.
  let count = 0;
  while (count < lines.length) {
    const beside = lineText(first + count);
    if (beside === undefined || (first + count > canvas.range.end.line && beside.trim() !== '')) break;
    count++;
  }
  count = Math.max(count, 1);
  if (lines.length > count) lines = [...lines.slice(0, count - 1), joinLines(lines.slice(count - 1))];
  // Fewer rows than replaced lines go beside the narrowest run of those lines: beside the first, a long line, they
  // ran off the editor's right edge (a trial saw only "→ return camelize(wo…" of a four-line rewrite).
  const width = (line: number) => displayWidth(lineText(line) ?? '', options.tabSize);
  const { end } = canvas.range;
  const selected = end.line - first + (end.character === 0 && end.line > first ? 0 : 1);
  const runWidth = (o: number) => Math.max(...lines.map((_, i) => width(first + o + i)));
  let offset = 0;
  for (let o = 1; o + lines.length <= selected; o++) if (runWidth(o) < runWidth(offset)) offset = o;
  const widths = lines.map((_, i) => width(first + offset + i));
  const column = lines.length > 1 ? Math.max(...widths) + REWRITE_GAP : 0;
  // Several rows keep the block's shape: the first line starts where the selection does, after the text before it.
  const prefix = (lineText(first) ?? '').slice(0, canvas.range.start.character);
  const before = lines.length > 1 ? displayWidth(prefix, options.tabSize) : 0;
  const rows = lines.map((segments, i): PreviewRow => {
    const line = lineText(first + offset + i) ?? '';
    const pad = NBSP.repeat(lines.length > 1 ? column - widths[i] : 1);
    const indent = i === 0 && before > 0 ? [{ kind: 'text' as const, text: NBSP.repeat(before) }] : [];
    const shown = inlineSegments(segments, { ...options, maxChars: Math.max(8, options.maxChars - column - before) });
    return {
      anchor: { line: first + offset + i, character: line.length },
      segments: mergeMarks([{ kind: 'mark', text: `${pad}${i === 0 ? '→' : '│'}${NBSP}` }, ...indent, ...shown]),
    };
  });
  return { struck: canvas.range, rows };
}

export function isEmptyRange(range: LspRange): boolean {
  return range.start.line === range.end.line && range.start.character === range.end.character;
}

export function rangesEqual(a: LspRange, b: LspRange): boolean {
  return (
    a.start.line === b.start.line &&
    a.start.character === b.start.character &&
    a.end.line === b.end.line &&
    a.end.character === b.end.character
  );
}

/** A rewrite or fill in flight, as far as routing canvases is concerned. */
export interface PendingEdit {
  uri: string;
  range?: LspRange; // a rewrite's selection; none for a fill, whose canvases span its placeholders
}

export type CanvasTarget = 'edit' | 'completion' | 'ignore';

/**
 * Which preview a canvas belongs to. The client cannot see the JSON-RPC ids languageclient assigns, so a rewrite's
 * canvases are recognised by document and range, and a fill's by document and a non-empty range (the span of its
 * placeholders); a completion streams over an empty range at the cursor (its last canvas may cover the rest of the
 * line it re-types); anything else (an infill or a rewrite started elsewhere) has no preview.
 */
export function routeCanvas(canvas: CanvasParams, pending: PendingEdit | undefined): CanvasTarget {
  if (pending && canvas.uri === pending.uri) {
    if (pending.range ? rangesEqual(canvas.range, pending.range) : !isEmptyRange(canvas.range)) return 'edit';
  }
  return isEmptyRange(canvas.range) || canvas.done ? 'completion' : 'ignore';
}

/** True when `id` belongs to a request sent after `last` (ids from one connection increase; strings can't be ordered). */
export function isNewerRequest(id: number | string, last: number | string | undefined): boolean {
  if (last === undefined) return true;
  if (typeof id === 'number' && typeof last === 'number') return id > last;
  return id !== last;
}

/**
 * The request whose canvases the completion preview draws: the newest seen. Request ids count up per connection, so a
 * restarted server's requests start again from the bottom: reset it with every new connection.
 */
export class LatestRequest {
  private last: number | string | undefined;

  /** True for a canvas of the newest request so far (which it then is), false for one of a superseded request. */
  admit(id: number | string): boolean {
    if (id !== this.last && !isNewerRequest(id, this.last)) return false;
    this.last = id;
    return true;
  }

  reset(): void {
    this.last = undefined;
  }
}

/**
 * Whether decoration types with these keys lay out in this order when they share a position: VS Code sorts them by
 * class name, `ced-<key>-<rule>`, as strings, so "Type10" comes before "Type9".
 */
export function keysRenderInOrder(keys: readonly string[]): boolean {
  return keys.every((key, i) => i === 0 || `${keys[i - 1]}-` < `${key}-`);
}

/** Segments split at line breaks ("\r" dropped): one list per line, an empty list for an empty line. */
export function splitLines(segments: readonly Segment[]): Segment[][] {
  const lines: Segment[][] = [[]];
  for (const segment of segments) {
    segment.text.split('\n').forEach((part, i) => {
      if (i > 0) lines.push([]);
      const text = part.replace(/\r/g, '');
      if (text) push(lines[lines.length - 1], segment.kind, text);
    });
  }
  return lines;
}

/** Lines joined into one with line breaks, for inlineSegments to draw as "⏎". */
function joinLines(lines: Segment[][]): Segment[] {
  const out: Segment[] = [];
  lines.forEach((line, i) => {
    if (i > 0) push(out, 'text', '\n');
    for (const segment of line) push(out, segment.kind, segment.text);
  });
  return out;
}

/** The columns a line takes on screen, tabs to the next tab stop. */
export function displayWidth(text: string, tabSize: number): number {
  let width = 0;
  for (const ch of text) width = ch === '\t' ? width + tabSize - (width % tabSize) : width + 1;
  return width;
}

/** Adjacent marks as one run. */
function mergeMarks(segments: Segment[]): Segment[] {
  const out: Segment[] = [];
  for (const s of segments) push(out, s.kind, s.text);
  return out;
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

function push(segments: Segment[], kind: SegmentKind, text: string): void {
  const last = segments[segments.length - 1];
  if (last && last.kind === kind) last.text += text;
  else segments.push({ kind, text });
}
