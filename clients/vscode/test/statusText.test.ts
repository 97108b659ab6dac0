import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pollAfterMs, ServerStatus, shortModel, statusText, statusTooltip } from '../src/statusText';

const status: ServerStatus = {
  backend: 'embedded',
  model: '/models/diffusion-tiny/',
  device: 'cpu',
  loaded: true,
  lastLatencyMs: 123.4,
  tokensPerForward: 2.345,
  nfe: 8,
};

describe('statusText', () => {
  it('shows backend, model, last latency and tokens per forward', () => {
    assert.equal(statusText(status, undefined), '$(sparkle) embedded · diffusion-tiny · 123 ms · 2.3 tok/fwd');
  });

  it('says a refused last fill showed nothing, and the tooltip says why', () => {
    const refused = { ...status, lastRefused: 'the model was unsure of it (a token at 0.25)' };
    assert.equal(statusText(refused, undefined), '$(sparkle) embedded · diffusion-tiny · 123 ms · no suggestion');
    assert.ok(statusTooltip(refused, undefined).includes('Last fill refused: the model was unsure of it'));
    assert.ok(!statusTooltip(status, undefined).includes('refused'));
  });

  it('spins while denoising, with the forward passes so far', () => {
    assert.equal(statusText(status, {}), '$(sync~spin) denoising');
    assert.equal(statusText(status, { step: 2, nfe: 3 }), '$(sync~spin) denoising · 3 fwd');
  });

  it('leaves out numbers the server has not measured yet and flags errors', () => {
    assert.equal(statusText({ backend: 'vllm', model: 'm', loaded: false }, undefined), '$(circle-outline) vllm · m');
    assert.equal(statusText({ ...status, error: 'no weights' }, undefined), '$(error) diffusion');
  });

  it('has a tooltip with every field', () => {
    const tooltip = statusTooltip({ ...status, error: 'boom', memoryFormat: 'bfloat16' }, undefined);
    for (const piece of ['embedded', 'diffusion-tiny', 'Device: cpu (bfloat16)', '123 ms', '2.35', 'boom', 'output channel']) {
      assert.ok(tooltip.includes(piece), piece);
    }
  });
});

describe('shortModel', () => {
  it('keeps the last path component', () => {
    assert.equal(shortModel('org/model-1b'), 'model-1b');
    assert.equal(shortModel('C:\\models\\tiny'), 'tiny');
    assert.equal(shortModel('tiny'), 'tiny');
  });
});

describe('statusText while the model loads', () => {
  it('spins and names the backend', () => {
    assert.equal(statusText({ backend: 'embedded', model: null, loaded: false, loading: true }, undefined), '$(loading~spin) embedded · loading');
  });
});

describe('statusTooltip, capabilities and languages', () => {
  const rated: ServerStatus = {
    ...status,
    capabilities: { instructions: false, streams: true, maskToken: true, nativeInfill: false },
    languages: { python: 'good', go: 'weak' },
  };

  it("shows the current language's rating and whether instructions are followed", () => {
    const tooltip = statusTooltip(rated, undefined, 'go');
    assert.ok(tooltip.includes('Model on go: weak'), tooltip);
    assert.ok(tooltip.includes('Instructions: ignored'), tooltip);
  });

  it('leaves the rating out for an unrated language or none', () => {
    assert.ok(!statusTooltip(rated, undefined, 'rust').includes('Model on'));
    assert.ok(!statusTooltip({ ...rated, languages: {} }, undefined, 'python').includes('Model on'));
    assert.ok(!statusTooltip(rated, undefined).includes('Model on'));
  });
});

describe('statusTooltip, repository context', () => {
  const repo = { budget: 256, indexing: false, indexedFiles: 24, totalFiles: 24, files: 22 };

  it('says it is off, and why when the server says', () => {
    const off = statusTooltip({ ...status, repo: { ...repo, budget: 0, off: 'repoContextBudget is 0' } }, undefined);
    assert.ok(off.includes('Repository context: off (repoContextBudget is 0)'), off);
    assert.ok(!off.includes('files indexed'), off);
    const older = statusTooltip({ ...status, repo: { ...repo, budget: 0 } }, undefined);
    assert.ok(older.includes('Repository context: off'), older);
    assert.ok(!statusTooltip(status, undefined).includes('Repository'));
  });

  it('shows what the index holds and what the last fill got, files best first', () => {
    const chunks = ['a/utils.py', 'a/core.py', 'a/utils.py', 'b/x.py', 'c/y.py'].map((path) => ({ path, kind: 'definition' }));
    const tooltip = statusTooltip({ ...status, lastLatencyMs: 80, repo, repoContext: { tokens: 190, chunks } }, undefined);
    assert.ok(tooltip.includes('Repository context: 256 tokens, 22 files indexed, 2 skipped'), tooltip);
    const one = statusTooltip({ ...status, repo: { ...repo, indexedFiles: 1, totalFiles: 1, files: 1 } }, undefined);
    assert.ok(one.includes('Repository context: 256 tokens, 1 file indexed'), one);
    assert.ok(tooltip.includes('Last context: 190 tokens, 5 chunks from a/utils.py, a/core.py, b/x.py, +1 more'), tooltip);
    const single = statusTooltip({ ...status, repo, repoContext: { tokens: 40, chunks: chunks.slice(0, 1) } }, undefined);
    assert.ok(single.includes('Last context: 40 tokens, 1 chunk from a/utils.py'), single);
  });

  it('names the files it skipped, with why', () => {
    const skipped = [
      { path: 'data/blob.py', why: 'binary' },
      { path: 'big.py', why: 'larger than 256 KB' },
    ];
    const tooltip = statusTooltip({ ...status, repo: { ...repo, skipped } }, undefined);
    assert.ok(tooltip.includes('Skipped: data/blob.py (binary), big.py (larger than 256 KB)'), tooltip);
    const many = ['a', 'b', 'c', 'd'].map((n) => ({ path: `${n}.py`, why: 'binary' }));
    const more = statusTooltip({ ...status, repo: { ...repo, files: 18, skipped: many } }, undefined);
    assert.ok(more.includes('Skipped: a.py (binary), b.py (binary), c.py (binary), +3 more'), more);
    assert.ok(!statusTooltip({ ...status, repo }, undefined).includes('Skipped'));
  });

  it('says so while indexing, and when the last fill got nothing', () => {
    const tooltip = statusTooltip(
      { ...status, lastLatencyMs: 80, repo: { ...repo, indexing: true, indexedFiles: 3 }, repoContext: null },
      undefined,
    );
    assert.ok(tooltip.includes('indexing, 3 of 24 files'), tooltip);
    assert.ok(tooltip.includes('Last context: nothing from the workspace'), tooltip);
  });
});

describe('pollAfterMs', () => {
  it('asks again while the model loads or the workspace is indexed, and stops after', () => {
    const base: ServerStatus = { backend: 'embedded', loaded: true };
    assert.equal(pollAfterMs(undefined), undefined);
    assert.equal(pollAfterMs({ ...base, loaded: false, loading: true }), 1000);
    assert.equal(pollAfterMs({ ...base, repo: { budget: 256, indexing: true, indexedFiles: 0, totalFiles: 0 } }), 2000);
    assert.equal(pollAfterMs({ ...base, repo: { budget: 256, indexing: false, files: 50 } }), undefined);
    assert.equal(pollAfterMs(base), undefined);
  });
});

describe('completions as you type turned off', () => {
  const status: ServerStatus = { backend: 'embedded', model: 'm', loaded: true, lastLatencyMs: 80 };

  it('says so in the status bar and the tooltip, with how to turn them on', () => {
    assert.equal(statusText(status, undefined, false), '$(circle-slash) embedded · completions off');
    assert.equal(statusText(status, { nfe: 2 }, false), '$(sync~spin) denoising · 2 fwd'); // an asked-for one runs
    const tooltip = statusTooltip(status, undefined, 'python', false);
    assert.ok(tooltip.includes('Completions as you type: off for python (Diffusion: Toggle Completions As You Type'));
    assert.ok(!statusTooltip(status, undefined, 'python').includes('Completions as you type'));
  });
});

describe('statusTooltip, a weak language', () => {
  const status: ServerStatus = { backend: 'embedded', loaded: true, languages: { typescript: 'weak', python: 'good' } };

  it('says that typing there asks for nothing, unless the server completes weak languages as you type', () => {
    assert.ok(
      statusTooltip({ ...status, weakLanguages: 'explicit' }, undefined, 'typescript').includes(
        'Model on typescript: weak (completes only when asked: Trigger Inline Suggestion; diffusionLs.weakLanguages)',
      ),
    );
    assert.ok(statusTooltip(status, undefined, 'typescript').includes('completes only when asked')); // the default
    assert.ok(statusTooltip({ ...status, weakLanguages: 'off' }, undefined, 'typescript').includes('no completions here'));
    assert.ok(statusTooltip({ ...status, weakLanguages: 'automatic' }, undefined, 'typescript').includes('Model on typescript: weak\n'));
  });

  it('says so in the status bar too: a trial saw nothing as it typed TypeScript, and no sign why', () => {
    const explicit = { ...status, weakLanguages: 'explicit' };
    assert.equal(statusText(explicit, undefined, true, 'typescript'), '$(circle-slash) embedded · typescript only when asked');
    assert.equal(statusText({ ...status, weakLanguages: 'off' }, undefined, true, 'typescript'), '$(circle-slash) embedded · typescript off');
    assert.equal(statusText({ ...status, weakLanguages: 'automatic' }, undefined, true, 'typescript'), '$(sparkle) embedded');
    assert.equal(statusText(explicit, undefined, true, 'python'), '$(sparkle) embedded');
    assert.equal(statusText(explicit, { nfe: 2 }, true, 'typescript'), '$(sync~spin) denoising · 2 fwd'); // an asked-for one
    assert.ok(statusTooltip(status, undefined, 'python').includes('Model on python: good\n'));
  });
});

