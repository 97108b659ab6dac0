// Pure mapping from the `diffusionLs.*` settings to how the server is started and what it is told. No `vscode` import.

/** Reads one setting below `diffusionLs.` (e.g. `server.command`); `undefined` when unset. */
export type Getter = (key: string) => unknown;

/** Settings the server reads (initializationOptions and workspace/didChangeConfiguration), under their wire names. */
export const SERVER_KEYS = {
  backend: 'string',
  modelPath: 'string',
  device: 'string',
  threads: 'number',
  dtype: 'string',
  strategy: 'string',
  steps: 'number',
  threshold: 'number',
  blockSize: 'number',
  canvasStart: 'number',
  maxTokens: 'number',
  contextBudget: 'number',
  repoContextBudget: 'number',
  debounceMs: 'number',
  canvasDelayMs: 'number',
  minConfidence: 'number',
  typingForwards: 'number',
  languages: 'strings',
  weakLanguages: 'string',
  logLevel: 'string',
  logFile: 'string',
} as const;

export type ServerValue = string | number | string[] | null;

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

/** The server command when `diffusionLs.server.command` is not set; then it is searched for (locate.ts). */
export const DEFAULT_COMMAND = 'diffusion-ls';

export interface Executable {
  command: string;
  args: string[];
  setting: 'server.command' | 'pythonPath'; // the setting that names the command
}

/**
 * How the server runs from `pythonPath`: `-m server.cli` would put the working directory, the user's workspace, first
 * on sys.path, where a `typing.py` breaks the start and a `server/` package would run instead of ours; `-c` puts it
 * there as '', which this takes off before anything is imported.
 */
export const PYTHON_MAIN =
  "import sys; sys.path[:1] = [] if sys.path[:1] == [''] else sys.path[:1]; from server.cli import main; sys.exit(main())";

/** `diffusion-ls serve [args]`, or the server's main from `pythonPath` (PYTHON_MAIN) when that is set. */
export function serverExecutable(get: Getter): Executable {
  const extra = stringArray(get('server.args'));
  const python = nonEmptyString(get('pythonPath'));
  if (python) return { command: python, args: ['-c', PYTHON_MAIN, 'serve', ...extra], setting: 'pythonPath' };
  const command = nonEmptyString(get('server.command')) ?? DEFAULT_COMMAND;
  return { command, args: ['serve', ...extra], setting: 'server.command' };
}

/**
 * The settings sent to the server, flat, every key present: null (unset, or a value of the wrong type) means "the
 * server's default", which also resets a value set earlier, since the server applies a change as a partial update.
 * The server validates ranges and reports bad values itself.
 */
export function serverSettings(get: Getter): Record<string, ServerValue> {
  const out: Record<string, ServerValue> = {};
  for (const [key, type] of Object.entries(SERVER_KEYS)) {
    const value = get(key);
    if (type === 'number') out[key] = typeof value === 'number' && Number.isFinite(value) ? value : null;
    else if (type === 'string') out[key] = nonEmptyString(value) ?? null;
    else out[key] = Array.isArray(value) ? stringArray(value) : null;
  }
  return out;
}

/** The client-side wait after a keystroke before asking for a completion (the server's `debounceMs`). */
export function debounceMs(get: Getter, fallback = 75): number {
  const value = get('debounceMs');
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : fallback;
}

/** Whether `diffusionLs.trace.server` asks for the LSP traffic in the output channel. */
export function tracing(setting: unknown): boolean {
  return setting === 'messages' || setting === 'verbose';
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
