// Where the server executable is looked for. The extension host's PATH is rarely the terminal's (no virtual
// environment activated), so with `diffusionLs.server.command` left at its default the places people install
// `diffusion-ls` are searched. Pure: the file system comes in as a function. No `vscode` import.
import * as path from 'node:path';
import { DEFAULT_COMMAND, Getter, serverExecutable } from './settings';

/** What the search looks at besides the settings. */
export interface SearchInput {
  platform: string; // process.platform
  home: string;
  env: Record<string, string | undefined>; // PATH, VIRTUAL_ENV, PIPX_BIN_DIR, PIPX_HOME, XDG_DATA_HOME
  workspaceFolders: string[]; // file system paths
  interpreter?: string; // the Python extension's selected interpreter, when it is active
}

/** A place the executable may be, and how to name it to a user. */
export interface Place {
  path: string;
  where: string;
}

export type Location =
  | { found: true; command: string; args: string[]; where: string }
  | { found: false; setting: 'server.command' | 'pythonPath'; configured?: string; searched: Place[] };

/**
 * How to start the server: `pythonPath` when set, else `server.command` (a path as it is, a bare name looked up on
 * PATH), and for the default command every place in `searchPlaces`. `isFile` says whether an executable file is there.
 */
export function locateServer(get: Getter, input: SearchInput, isFile: (file: string) => boolean): Location {
  const { command, args, setting } = serverExecutable(get);
  const searched = setting === 'server.command' && command === DEFAULT_COMMAND;
  const expanded = expand(command, input);
  let places: Place[];
  if (searched) places = searchPlaces(input);
  else if (/[\\/]/.test(expanded)) places = [{ path: expanded, where: `diffusionLs.${setting}` }];
  else places = onPath(expanded, input);
  const hit = places.find((place) => isFile(place.path));
  if (hit) return { found: true, command: hit.path, args, where: hit.where };
  return searched
    ? { found: false, setting, searched: places }
    : { found: false, setting, configured: command, searched: places };
}

/** Every place `diffusion-ls` may be installed, most specific first, without repeats. */
export function searchPlaces(input: SearchInput): Place[] {
  const p = pathApi(input.platform);
  const windows = input.platform === 'win32';
  const name = windows ? `${DEFAULT_COMMAND}.exe` : DEFAULT_COMMAND;
  const bin = windows ? 'Scripts' : 'bin';
  const { env, home } = input;
  const places: Place[] = [];
  for (const folder of input.workspaceFolders) {
    for (const venv of ['.venv', 'venv']) {
      places.push({ path: p.join(folder, venv, bin, name), where: `the workspace's ${venv}` });
    }
  }
  if (env.VIRTUAL_ENV) places.push({ path: p.join(env.VIRTUAL_ENV, bin, name), where: '$VIRTUAL_ENV' });
  if (input.interpreter) {
    places.push({ path: p.join(p.dirname(input.interpreter), name), where: "the Python extension's interpreter" });
  }
  places.push(...onPath(DEFAULT_COMMAND, input));
  if (env.PIPX_BIN_DIR) places.push({ path: p.join(env.PIPX_BIN_DIR, name), where: 'pipx ($PIPX_BIN_DIR)' });
  places.push({ path: p.join(home, '.local', 'bin', name), where: '~/.local/bin (pip --user, pipx)' });
  const pipxHomes = env.PIPX_HOME
    ? [env.PIPX_HOME]
    : windows
      ? [p.join(home, 'pipx')]
      : [
          p.join(home, '.local', 'pipx'),
          p.join(env.XDG_DATA_HOME || p.join(home, '.local', 'share'), 'pipx'),
          ...(input.platform === 'darwin' ? [p.join(home, 'Library', 'Application Support', 'pipx')] : []),
        ];
  for (const pipx of pipxHomes) places.push({ path: p.join(pipx, 'venvs', DEFAULT_COMMAND, bin, name), where: 'pipx' });
  const seen = new Set<string>();
  return places.filter((place) => !seen.has(place.path) && seen.add(place.path));
}

/** `name` in each directory of PATH. */
function onPath(name: string, input: SearchInput): Place[] {
  const p = pathApi(input.platform);
  const names = input.platform === 'win32' && !/\.(exe|cmd|bat)$/i.test(name) ? [`${name}.exe`, `${name}.cmd`] : [name];
  const dirs = (input.env.PATH ?? input.env.Path ?? '').split(p.delimiter).filter((dir) => dir !== '');
  return dirs.flatMap((dir) => names.map((n) => ({ path: p.join(dir, n), where: 'PATH' })));
}

/** `~` and `${workspaceFolder}` at the start of a configured path, as users write them in settings. */
function expand(command: string, input: SearchInput): string {
  const p = pathApi(input.platform);
  if (command === '~' || command.startsWith('~/') || command.startsWith('~\\')) return p.join(input.home, command.slice(1));
  const folder = input.workspaceFolders[0];
  if (folder && command.startsWith('${workspaceFolder}')) return p.join(folder, command.slice('${workspaceFolder}'.length));
  return command;
}

function pathApi(platform: string): path.PlatformPath {
  return platform === 'win32' ? path.win32 : path.posix;
}

/** The one message shown when the server cannot be started because it was not found, and the places searched. */
export function missingMessage(location: Extract<Location, { found: false }>): string {
  const install = 'Install it from a clone of its repository ("pipx install ./diffusion-ls", or "pip install -e ." in the ' +
    'workspace\'s .venv; its README: Install)';
  if (location.configured) {
    return `Diffusion LS: "${location.configured}" (setting diffusionLs.${location.setting}) was not found. ` +
      `${install}, or set diffusionLs.${location.setting} to where it is.`;
  }
  return 'Diffusion LS: the diffusion-ls server was not found (looked in the workspace\'s .venv and venv, ' +
    '$VIRTUAL_ENV, the Python extension\'s interpreter, PATH, ~/.local/bin and pipx). ' +
    `${install}, or set diffusionLs.server.command to its path.`;
}
