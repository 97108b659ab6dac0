// Pure reading of the server's answers to `diffusion/rewrite` and `diffusion/status`. No `vscode` import.
import { LspRange } from './canvas';
import { ServerStatus } from './statusText';

export interface TextEdit {
  range: LspRange;
  newText: string;
}

/** The answer to `diffusion/rewrite`: edit null when the server refused its result, and `reason` then says why. */
export interface RewriteResult {
  edit: TextEdit | null;
  version: number;
  reason?: string | null;
}

export type RewriteOutcome =
  | { kind: 'ready'; edit: TextEdit } // preview it; the document changes on accept
  | { kind: 'refused'; reason: string } // nothing to accept: say why
  | { kind: 'stale' }; // for another version of the document: drop it

/** What to do with a rewrite's answer, asked for at document version `version`. */
export function rewriteOutcome(result: RewriteResult | null | undefined, version: number): RewriteOutcome {
  if (result && result.edit === null) {
    const reason = typeof result.reason === 'string' && result.reason.trim() ? result.reason.trim() : 'no reason given';
    return { kind: 'refused', reason };
  }
  if (!result?.edit || result.version !== version) return { kind: 'stale' };
  return { kind: 'ready', edit: result.edit };
}

export function refusedMessage(reason: string): string {
  return `diffusion-ls: rewrite refused: ${reason}`;
}

/** Rewrite Selection asks for an instruction only from a model the server says follows them. */
export function asksForInstruction(status: ServerStatus | undefined): boolean {
  return status?.capabilities?.instructions === true;
}

/** The server's `diffusion.rewrite` command, as its code actions (the lightbulb) carry it. */
export const REWRITE_COMMAND = 'diffusion.rewrite';

/** What a code action asks to rewrite: the document, the range, and the mode when it names one. */
export interface RewriteTarget {
  uri: string;
  range: LspRange;
  mode?: string;
}

/** The target of a `diffusion.rewrite` command's arguments (`[{textDocument: {uri}, range, mode?}]`); undefined when
 * they are not that. */
export function rewriteTarget(args: unknown): RewriteTarget | undefined {
  const first: unknown = Array.isArray(args) ? args[0] : undefined;
  if (typeof first !== 'object' || first === null) return undefined;
  const a = first as { textDocument?: { uri?: unknown }; range?: unknown; mode?: unknown };
  const uri = a.textDocument?.uri;
  if (typeof uri !== 'string' || !isRange(a.range)) return undefined;
  return { uri, range: a.range, ...(typeof a.mode === 'string' ? { mode: a.mode } : {}) };
}

function isPosition(p: unknown): boolean {
  const q = p as { line?: unknown; character?: unknown } | null;
  return typeof q === 'object' && q !== null && Number.isInteger(q.line) && Number.isInteger(q.character);
}

function isRange(r: unknown): r is LspRange {
  const q = r as { start?: unknown; end?: unknown } | null;
  return typeof q === 'object' && q !== null && isPosition(q.start) && isPosition(q.end);
}

/** What the editor says when a completion the user asked for (Trigger Inline Suggestion) comes back empty because the
 * server refused it: "no suggestion: <reason>", else nothing (an empty answer the server gave no reason for says
 * nothing). Shown at the end of the line and in the status bar. */
export function refusedCompletionNote(result: unknown, reason: string | null | undefined): string | undefined {
  const items = Array.isArray(result) ? result : (result as { items?: unknown } | null | undefined)?.items;
  if (Array.isArray(items) && items.length > 0) return undefined;
  const why = typeof reason === 'string' ? reason.trim() : '';
  return why ? `no suggestion: ${why}` : undefined;
}

/** A note cut to `max` characters at a word, with `…`: a long refusal at the end of a line ran past the editor's
 * right edge and gave it a horizontal scrollbar (the whole text goes in the note's hover and the status bar). */
export function shortNote(text: string, max = 90): string {
  if (text.length <= max) return text;
  const cut = text.slice(0, max - 1);
  const space = cut.lastIndexOf(' ');
  return (space > max / 2 ? cut.slice(0, space) : cut).replace(/[\s,;:]+$/, '') + '…';
}

/** A placeholder a fill left as it was, and why. */
export interface KeptPlaceholder {
  range: LspRange;
  reason: string;
}

/** The answer to `diffusion/infill`: the edits that passed the server's guard, and the placeholders it kept. */
export interface InfillResult {
  edits?: TextEdit[] | null;
  kept?: KeptPlaceholder[] | null;
  version: number;
}

export type FillOutcome =
  | { kind: 'ready'; edits: TextEdit[]; kept: KeptPlaceholder[] } // preview them; the document changes on accept
  | { kind: 'none'; kept: KeptPlaceholder[] } // nothing filled: say why
  | { kind: 'stale' }; // for another version of the document: drop it

/** What to do with a fill's answer, asked for at document version `version`. */
export function fillOutcome(result: InfillResult | null | undefined, version: number): FillOutcome {
  if (!result || result.version !== version) return { kind: 'stale' };
  const edits = Array.isArray(result.edits) ? result.edits : [];
  const kept = Array.isArray(result.kept) ? result.kept : [];
  return edits.length > 0 ? { kind: 'ready', edits, kept } : { kind: 'none', kept };
}

/** Line numbers listed per reason in a fill's report. */
const FILL_LINES = 6;

/**
 * The fill's report: how many placeholders were filled (previewed, to accept or reject) and which were kept, grouped
 * by reason, the commonest first (hundreds kept for another request must not hide another reason), a few line numbers
 * each. `warn` when some were kept.
 */
export function fillMessage(filled: number, kept: readonly KeptPlaceholder[]): { text: string; warn: boolean } {
  const total = filled + kept.length;
  const s = total === 1 ? '' : 's';
  if (total === 0) return { text: 'Diffusion: no placeholder to fill', warn: false };
  const head =
    filled === 0
      ? `Diffusion: filled none of ${total} placeholder${s}`
      : `Diffusion: filled ${kept.length === 0 ? filled : `${filled} of ${total}`} placeholder${s}: accept or reject`;
  if (kept.length === 0) return { text: head, warn: false };
  const lines = new Map<string, number[]>();
  for (const k of kept) {
    const reason = typeof k.reason === 'string' && k.reason.trim() ? k.reason.trim() : 'no reason given';
    lines.set(reason, [...(lines.get(reason) ?? []), k.range.start.line + 1]);
  }
  const parts = [...lines.entries()]
    .sort((a, b) => b[1].length - a[1].length) // stable: ties keep the order of first appearance
    .map(([reason, l]) => {
      const more = l.length > FILL_LINES ? ` and ${l.length - FILL_LINES} more` : '';
      return `${reason} (line${l.length > 1 ? 's' : ''} ${l.slice(0, FILL_LINES).join(', ')}${more})`;
    });
  return { text: `${head}; kept ${kept.length}: ${parts.join('; ')}`, warn: true };
}
