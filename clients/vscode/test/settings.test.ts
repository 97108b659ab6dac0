import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { debounceMs, documentSelector, Getter, PYTHON_MAIN, serverExecutable, serverSettings, tracing } from '../src/settings';

const from =
  (values: Record<string, unknown>): Getter =>
  (key) =>
    values[key];

describe('serverExecutable', () => {
  it('runs `diffusion-ls serve` by default', () => {
    assert.deepEqual(serverExecutable(from({})), { command: 'diffusion-ls', args: ['serve'], setting: 'server.command' });
  });

  it('uses the configured command and appends the extra arguments', () => {
    const get = from({ 'server.command': ' /opt/venv/bin/diffusion-ls ', 'server.args': ['--log-level', 'debug', 3] });
    assert.deepEqual(serverExecutable(get), {
      command: '/opt/venv/bin/diffusion-ls',
      args: ['serve', '--log-level', 'debug'],
      setting: 'server.command',
    });
  });

  it('prefers the python interpreter when pythonPath is set', () => {
    const get = from({ 'server.command': 'diffusion-ls', pythonPath: '/opt/venv/bin/python', 'server.args': ['-v'] });
    assert.deepEqual(serverExecutable(get), {
      command: '/opt/venv/bin/python',
      args: ['-c', PYTHON_MAIN, 'serve', '-v'],
      setting: 'pythonPath',
    });
  });

  it('falls back to the default for an empty command', () => {
    assert.equal(serverExecutable(from({ 'server.command': '  ', pythonPath: '' })).command, 'diffusion-ls');
  });
});

describe('serverSettings', () => {
  const unset = {
    backend: null,
    modelPath: null,
    device: null,
    threads: null,
    dtype: null,
    strategy: null,
    steps: null,
    threshold: null,
    blockSize: null,
    canvasStart: null,
    maxTokens: null,
    contextBudget: null,
    repoContextBudget: null,
    debounceMs: null,
    canvasDelayMs: null,
    minConfidence: null,
    typingForwards: null,
    languages: null,
    weakLanguages: null,
    logLevel: null,
    logFile: null,
  };

  it('sends every server setting under its wire name, null when unset, and no client-only setting', () => {
    const sent = {
      steps: 8,
      maxTokens: 16,
      blockSize: 16,
      canvasStart: 0,
      threshold: 0.9,
      minConfidence: 0.5,
      typingForwards: 7,
      strategy: 'confidence',
      languages: ['python'],
    };
    // an empty modelPath is unset; the last two are the client's own settings
    const get = from({ ...sent, modelPath: '', 'server.command': 'diffusion-ls', 'trace.server': 'verbose' });
    assert.deepEqual(serverSettings(get), { ...unset, ...sent });
  });

  it('sends null for values of the wrong type, so the server keeps its default', () => {
    const get = from({ steps: 'many', contextBudget: Number.NaN, backend: 42, modelPath: ' m ', languages: 'py' });
    assert.deepEqual(serverSettings(get), { ...unset, modelPath: 'm' });
  });
});

describe('debounceMs', () => {
  it('uses the setting when it is a non-negative number, else the fallback', () => {
    assert.equal(debounceMs(from({ debounceMs: 0 })), 0);
    assert.equal(debounceMs(from({ debounceMs: 120 })), 120);
    assert.equal(debounceMs(from({ debounceMs: -1 }), 50), 50);
    assert.equal(debounceMs(from({})), 75);
  });
});

describe('documentSelector', () => {
  it('covers saved and unsaved python documents', () => {
    const selector = documentSelector();
    assert.ok(selector.some((s) => s.language === 'python' && s.scheme === 'file'));
    assert.ok(selector.some((s) => s.language === 'python' && s.scheme === 'untitled'));
  });
});

describe('tracing', () => {
  it('is on for messages and verbose, off for off and anything else', () => {
    assert.equal(tracing('messages'), true);
    assert.equal(tracing('verbose'), true);
    assert.equal(tracing('off'), false);
    assert.equal(tracing(undefined), false);
    assert.equal(tracing(true), false);
  });
});
