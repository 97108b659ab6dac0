// Pure mapping from the `diffusionLs.*` settings to how the server is started and what it is told. No `vscode` import.

/** Reads one setting below `diffusionLs.` (e.g. `server.command`); `undefined` when unset. */
export type Getter = (key: string) => unknown;

/** Settings the server reads (initializationOptions and workspace/didChangeConfiguration), under their wire names. */
export const SERVER_KEYS = [
  'backend',
  'modelPath',
  'strategy',
  'steps',
  'threshold',
  'contextBudget',
  'maxTokens',
  'blockSize',
] as const;

/** Settings that only take effect when the server process is started again. */
export const RESTART_KEYS = ['server.command', 'server.args', 'pythonPath'] as const;

/** The languages the server parses with tree-sitter. */
export const LANGUAGES = [
  'python',
  'javascript',
  'javascriptreact',
  'typescript',
  'typescriptreact',
  'go',
  'rust',
  'java',
  'c',
  'cpp',
] as const;

export interface Executable {
  command: string;
  args: string[];
}

/** `diffusion-ls serve [args]`, or `python -m server.cli serve [args]` when `pythonPath` is set. */
export function serverExecutable(get: Getter): Executable {
  const extra = stringArray(get('server.args'));
  const python = nonEmptyString(get('pythonPath'));
  if (python) return { command: python, args: ['-m', 'server.cli', 'serve', ...extra] };
  const command = nonEmptyString(get('server.command')) ?? 'diffusion-ls';
  return { command, args: ['serve', ...extra] };
}

/**
 * The settings sent to the server. Unset (null) settings are left out so the server's own defaults apply; values of
 * the wrong type are left out too (the server validates ranges and reports bad values itself).
 */
export function serverSettings(get: Getter): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const key of SERVER_KEYS) {
    const value = get(key);
    if (typeof value === 'number' && Number.isFinite(value)) out[key] = value;
    else if (typeof value === 'string' && value.trim() !== '') out[key] = value.trim();
  }
  return out;
}

/** Document selector entries for the supported languages, on disk and unsaved. */
export function documentSelector(): { scheme: string; language: string }[] {
  return LANGUAGES.flatMap((language) => [
    { scheme: 'file', language },
    { scheme: 'untitled', language },
  ]);
}

function nonEmptyString(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
}

function stringArray(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}
