import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { locateServer, missingMessage, SearchInput, searchPlaces } from '../src/locate';
import { Getter, PYTHON_MAIN } from '../src/settings';

const from =
  (values: Record<string, unknown>): Getter =>
  (key) =>
    values[key];

const linux: SearchInput = {
  platform: 'linux',
  home: '/home/u',
  env: { PATH: '/usr/local/bin:/usr/bin', VIRTUAL_ENV: '/opt/env' },
  workspaceFolders: ['/w/proj'],
  interpreter: '/home/u/.pyenv/versions/3.12/bin/python',
};

/** A file system holding exactly these executables. */
const files =
  (...paths: string[]) =>
  (file: string) =>
    paths.includes(file);

describe('searchPlaces', () => {
  it('looks in the workspace venvs, $VIRTUAL_ENV, the interpreter, PATH, ~/.local/bin and pipx, in that order', () => {
    assert.deepEqual(
      searchPlaces(linux).map((place) => place.path),
      [
        '/w/proj/.venv/bin/diffusion-ls',
        '/w/proj/venv/bin/diffusion-ls',
        '/opt/env/bin/diffusion-ls',
        '/home/u/.pyenv/versions/3.12/bin/diffusion-ls',
        '/usr/local/bin/diffusion-ls',
        '/usr/bin/diffusion-ls',
        '/home/u/.local/bin/diffusion-ls',
        '/home/u/.local/pipx/venvs/diffusion-ls/bin/diffusion-ls',
        '/home/u/.local/share/pipx/venvs/diffusion-ls/bin/diffusion-ls',
      ],
    );
  });

  it('lists a place once, and follows PIPX_BIN_DIR, PIPX_HOME and XDG_DATA_HOME', () => {
    const input = {
      ...linux,
      interpreter: undefined,
      env: { PATH: '/home/u/.local/bin:/usr/bin:/usr/bin', PIPX_BIN_DIR: '/p/bin', PIPX_HOME: '/p/home' },
    };
    assert.deepEqual(
      searchPlaces(input).map((place) => place.path),
      [
        '/w/proj/.venv/bin/diffusion-ls',
        '/w/proj/venv/bin/diffusion-ls',
        '/home/u/.local/bin/diffusion-ls',
        '/usr/bin/diffusion-ls',
        '/p/bin/diffusion-ls',
        '/p/home/venvs/diffusion-ls/bin/diffusion-ls',
      ],
    );
  });

  it('uses Scripts\\diffusion-ls.exe and ; on Windows', () => {
    const input: SearchInput = {
      platform: 'win32',
      home: 'C:\\Users\\u',
      env: { Path: 'C:\\Python312\\Scripts;C:\\bin' },
      workspaceFolders: ['C:\\w'],
    };
    const paths = searchPlaces(input).map((place) => place.path);
    assert.equal(paths[0], 'C:\\w\\.venv\\Scripts\\diffusion-ls.exe');
    assert.ok(paths.includes('C:\\Python312\\Scripts\\diffusion-ls.exe'));
    assert.ok(paths.includes('C:\\Users\\u\\pipx\\venvs\\diffusion-ls\\Scripts\\diffusion-ls.exe'));
  });
});

describe('locateServer', () => {
  it('prefers the workspace .venv over PATH when the command is left at its default', () => {
    const location = locateServer(from({}), linux, files('/usr/bin/diffusion-ls', '/w/proj/.venv/bin/diffusion-ls'));
    assert.deepEqual(location, {
      found: true,
      command: '/w/proj/.venv/bin/diffusion-ls',
      args: ['serve'],
      where: "the workspace's .venv",
    });
  });

  it('finds a pipx install with nothing on PATH', () => {
    const input = { ...linux, env: {} };
    const location = locateServer(from({}), input, files('/home/u/.local/share/pipx/venvs/diffusion-ls/bin/diffusion-ls'));
    assert.equal(location.found && location.command, '/home/u/.local/share/pipx/venvs/diffusion-ls/bin/diffusion-ls');
  });

  it('reports every place it looked when there is nothing', () => {
    const location = locateServer(from({}), linux, files());
    assert.equal(location.found, false);
    if (location.found) return;
    assert.equal(location.setting, 'server.command');
    assert.equal(location.configured, undefined);
    assert.equal(location.searched.length, searchPlaces(linux).length);
  });

  it('takes a configured path as it is, expanding ~ and ${workspaceFolder}', () => {
    const home = locateServer(from({ 'server.command': '~/bin/dls', 'server.args': ['-v'] }), linux, files('/home/u/bin/dls'));
    assert.deepEqual(home, { found: true, command: '/home/u/bin/dls', args: ['serve', '-v'], where: 'diffusionLs.server.command' });
    const folder = locateServer(from({ 'server.command': '${workspaceFolder}/env/bin/dls' }), linux, files('/w/proj/env/bin/dls'));
    assert.equal(folder.found && folder.command, '/w/proj/env/bin/dls');
  });

  it('does not search elsewhere for a configured path that is missing', () => {
    const location = locateServer(from({ 'server.command': '/nope/diffusion-ls' }), linux, files('/usr/bin/diffusion-ls'));
    assert.deepEqual(location, {
      found: false,
      setting: 'server.command',
      configured: '/nope/diffusion-ls',
      searched: [{ path: '/nope/diffusion-ls', where: 'diffusionLs.server.command' }],
    });
  });

  it('looks a configured bare name up on PATH only', () => {
    const location = locateServer(from({ 'server.command': 'dls' }), linux, files('/usr/bin/dls', '/w/proj/.venv/bin/dls'));
    assert.equal(location.found && location.command, '/usr/bin/dls');
  });

  it('starts pythonPath with the main of server.cli (PYTHON_MAIN), and names that setting when it is missing', () => {
    const found = locateServer(from({ pythonPath: 'python3' }), linux, files('/usr/bin/python3'));
    assert.deepEqual(found, { found: true, command: '/usr/bin/python3', args: ['-c', PYTHON_MAIN, 'serve'], where: 'PATH' });
    const missing = locateServer(from({ pythonPath: '/opt/py/bin/python' }), linux, files());
    assert.equal(!missing.found && missing.setting, 'pythonPath');
  });
});

describe('missingMessage', () => {
  it('says where it looked, how to install, and which setting to set', () => {
    const location = locateServer(from({}), linux, files());
    assert.ok(!location.found);
    const message = missingMessage(location);
    for (const piece of ['was not found', '.venv', 'PATH', 'pipx', 'pipx install ./diffusion-ls', 'diffusionLs.server.command']) {
      assert.ok(message.includes(piece), piece);
    }
  });

  it('names the configured command and its setting', () => {
    const location = locateServer(from({ pythonPath: '/opt/py/bin/python' }), linux, files());
    assert.ok(!location.found);
    const message = missingMessage(location);
    assert.ok(message.includes('"/opt/py/bin/python" (setting diffusionLs.pythonPath) was not found'), message);
    assert.ok(message.includes('set diffusionLs.pythonPath to where it is'), message);
  });
});
