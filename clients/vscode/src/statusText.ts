// Pure formatting of the status bar item from `diffusion/status` and the canvases in flight. No `vscode` import.

/** The reply to `diffusion/status`. */
export interface ServerStatus {
  backend: string;
  model?: string | null; // null until the model is loaded
  device?: string;
  memoryFormat?: string | null; // the weights' number format (bfloat16, float32, int4 ...)
  loaded: boolean;
  loading?: boolean;
  error?: string | null;
  lastLatencyMs?: number | null;
  lastRefused?: string | null; // the guard's reason when the last fill was refused (nothing was shown)
  tokensPerForward?: number | null;
  nfe?: number | null;
  capabilities?: Capabilities;
  languages?: Record<string, LanguageRating>; // how well the model writes each language (language ids); may be empty
  weakLanguages?: string; // completion as you type in a weak language: 'explicit' (only when asked), 'automatic', 'off'
  minConfidence?: number | null; // the last fill's least sure token (automatic completions under the setting are hidden)
  repo?: RepoStatus; // the workspace index behind repoContextBudget
  repoContext?: RepoContext | null; // what the last fill was given of the workspace (null: nothing yet)
}

/** The workspace index (`repo` of `diffusion/status`). */
export interface RepoStatus {
  budget?: number; // repoContextBudget: 0 is off
  off?: string | null; // why it is off (null: on)
  indexing?: boolean;
  indexedFiles?: number; // files walked, skipped ones included
  totalFiles?: number;
  files?: number; // files the index holds
  skipped?: { path?: string; why?: string }[]; // the first files it left out (binary, too large, generated), with why
}

/** The repository context of the last fill. */
export interface RepoContext {
  tokens?: number;
  chunks?: { path?: string; kind?: string }[];
}

/** What the loaded model can do. */
export interface Capabilities {
  instructions?: boolean; // follows a rewrite instruction
  streams?: boolean; // sends intermediate canvases
  maskToken?: boolean;
  nativeInfill?: boolean;
}

export type LanguageRating = 'good' | 'fair' | 'weak';

/**
 * How long to wait before asking `diffusion/status` again by itself (undefined: not until something happens): while
 * the model loads or the workspace is indexed, nothing else would ask once they are done.
 */
export function pollAfterMs(status: ServerStatus | undefined): number | undefined {
  if (status?.loading) return 1000;
  if (status?.repo?.indexing) return 2000;
  return undefined;
}

/** Denoising in flight: the latest canvas seen, if any yet. */
export interface Progress {
  step?: number;
  nfe?: number;
}

/**
 * Whether typing in `languageId` gets no completions from the server: the model is rated weak there and the server
 * completes weak languages only when asked, or not at all (its weakLanguages setting).
 */
export function onlyWhenAsked(status: ServerStatus | undefined, languageId: string | undefined): boolean {
  if (!status || !languageId || status.languages?.[languageId] !== 'weak') return false;
  return status.weakLanguages !== 'automatic';
}

/**
 * `asYouType` false: completion as you type is off for the active editor (diffusionLs.completions.enabled);
 * `languageId`: the active editor's, whose rating may keep the server from completing as you type.
 */
export function statusText(
  status: ServerStatus | undefined,
  progress: Progress | undefined,
  asYouType = true,
  languageId?: string,
): string {
  if (progress) {
    return progress.nfe ? `$(sync~spin) denoising · ${progress.nfe} fwd` : '$(sync~spin) denoising';
  }
  if (!status) return '$(circle-outline) diffusion';
  if (status.error) return '$(error) diffusion';
  if (status.loading) return `$(loading~spin) ${status.backend} · loading`;
  if (!asYouType) return `$(circle-slash) ${status.backend} · completions off`;
  if (onlyWhenAsked(status, languageId)) {
    // the tooltip says why (the model is weak at it) and which setting changes it
    const what = status.weakLanguages === 'off' ? 'off' : 'only when asked';
    return `$(circle-slash) ${status.backend} · ${languageId} ${what}`;
  }
  const parts = [status.backend, ...(status.model ? [shortModel(status.model)] : [])];
  if (isNumber(status.lastLatencyMs)) parts.push(`${Math.round(status.lastLatencyMs)} ms`);
  // a refused fill showed nothing: its rate would read as a suggestion made (the tooltip says why)
  if (status.lastRefused) parts.push('no suggestion');
  else if (isNumber(status.tokensPerForward)) parts.push(`${status.tokensPerForward.toFixed(1)} tok/fwd`);
  return `${status.loaded ? '$(sparkle)' : '$(circle-outline)'} ${parts.join(' · ')}`;
}

export function statusTooltip(
  status: ServerStatus | undefined,
  progress: Progress | undefined,
  languageId?: string,
  asYouType = true,
): string {
  const lines: string[] = [];
  if (progress) lines.push(`Denoising: forward pass ${progress.nfe ?? 0}`);
  if (!asYouType) {
    lines.push(
      `Completions as you type: off${languageId ? ` for ${languageId}` : ''} (Diffusion: Toggle Completions As You ` +
        'Type turns them on; Trigger Inline Suggestion still asks)',
    );
  }
  if (!status) {
    lines.push('diffusion-ls: no status yet');
  } else {
    lines.push(`Backend: ${status.backend}`, `Model: ${status.model ?? '(not loaded)'}`);
    if (status.device) lines.push(`Device: ${status.device}${status.memoryFormat ? ` (${status.memoryFormat})` : ''}`);
    lines.push(`Loaded: ${status.loaded ? 'yes' : 'no'}`);
    if (isNumber(status.lastLatencyMs)) lines.push(`Last latency: ${Math.round(status.lastLatencyMs)} ms`);
    if (status.lastRefused) lines.push(`Last fill refused: ${status.lastRefused}`);
    if (isNumber(status.nfe)) lines.push(`Forward passes (last request): ${status.nfe}`);
    if (isNumber(status.tokensPerForward)) lines.push(`Tokens per forward: ${status.tokensPerForward.toFixed(2)}`);
    if (isNumber(status.minConfidence)) lines.push(`Least sure token: ${status.minConfidence.toFixed(2)}`);
    lines.push(...repoLines(status));
    const rating = languageId ? status.languages?.[languageId] : undefined;
    if (rating) lines.push(`Model on ${languageId}: ${rating}${weakNote(rating, status.weakLanguages)}`);
    if (status.capabilities) lines.push(`Instructions: ${status.capabilities.instructions ? 'followed' : 'ignored'}`);
    if (status.error) lines.push(`Error: ${status.error}`);
  }
  lines.push('Click to open the output channel.');
  return lines.join('\n');
}

/** What a weak rating means for completions as you type (the server's weakLanguages setting). */
function weakNote(rating: LanguageRating, weakLanguages: string | undefined): string {
  if (rating !== 'weak') return '';
  if (weakLanguages === 'off') return ' (no completions here: diffusionLs.weakLanguages is "off")';
  if (weakLanguages === 'automatic') return '';
  return ' (completes only when asked: Trigger Inline Suggestion; diffusionLs.weakLanguages)';
}

/** The repository context: what the index holds and what the last fill got from it, or why it is off. */
export function repoLines(status: ServerStatus): string[] {
  const r = status.repo;
  if (!r || !isNumber(r.budget)) return [];
  if (r.budget <= 0) return [`Repository context: off${typeof r.off === 'string' ? ` (${r.off})` : ''}`];
  let what: string;
  if (r.indexing) what = `indexing, ${r.indexedFiles ?? '?'} of ${r.totalFiles ?? '?'} files`;
  else {
    const held = isNumber(r.files) ? r.files : r.indexedFiles;
    what = `${held ?? '?'} ${held === 1 ? 'file' : 'files'} indexed`;
    if (isNumber(r.files) && isNumber(r.totalFiles) && r.totalFiles > r.files) what += `, ${r.totalFiles - r.files} skipped`;
  }
  const lines = [`Repository context: ${r.budget} tokens, ${what}`];
  const skipped = (r.skipped ?? []).filter((f) => typeof f?.path === 'string');
  if (skipped.length > 0) {
    const more = Math.max(skipped.length, isNumber(r.files) && isNumber(r.totalFiles) ? r.totalFiles - r.files : 0) - 3;
    const named = skipped.slice(0, 3).map((f) => (typeof f.why === 'string' ? `${f.path} (${f.why})` : f.path));
    lines.push(`Skipped: ${named.join(', ')}${more > 0 ? `, +${more} more` : ''}`);
  }
  const c = status.repoContext;
  if (isNumber(status.lastLatencyMs)) {
    const chunks = c?.chunks ?? [];
    if (!c || !isNumber(c.tokens) || c.tokens === 0 || chunks.length === 0) {
      lines.push('Last context: nothing from the workspace');
    } else {
      const files = [...new Set(chunks.map((ch) => ch.path).filter((p): p is string => typeof p === 'string'))];
      const shown = files.slice(0, 3).join(', ') + (files.length > 3 ? `, +${files.length - 3} more` : '');
      lines.push(`Last context: ${c.tokens} tokens, ${chunks.length} chunk${chunks.length === 1 ? '' : 's'} from ${shown}`);
    }
  }
  return lines;
}

/** The last path component of a model path or id, which is what fits in a status bar. */
export function shortModel(model: string): string {
  const parts = model.split(/[\\/]/).filter((p) => p !== '');
  return parts.length > 0 ? parts[parts.length - 1] : model;
}

function isNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}
