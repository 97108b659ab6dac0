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
