import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  asksForInstruction,
  fillMessage,
  fillOutcome,
  refusedCompletionNote,
  refusedMessage,
  rewriteOutcome,
  rewriteTarget,
  shortNote,
} from '../src/outcome';

const edit = { range: { start: { line: 1, character: 4 }, end: { line: 2, character: 0 } }, newText: 'y = 2\n' };

describe('rewriteOutcome', () => {
  it('is ready with the edit for the version it was asked at', () => {
    assert.deepEqual(rewriteOutcome({ edit, version: 3, reason: null }, 3), { kind: 'ready', edit });
    assert.deepEqual(rewriteOutcome({ edit, version: 3 }, 3), { kind: 'ready', edit }); // a server before the edit guard
  });

  it('is refused, with the reason, when the server sends no edit', () => {
    const refused = rewriteOutcome({ edit: null, version: 3, reason: 'it would add parse errors' }, 3);
    assert.deepEqual(refused, { kind: 'refused', reason: 'it would add parse errors' });
    assert.deepEqual(rewriteOutcome({ edit: null, version: 3, reason: null }, 3), { kind: 'refused', reason: 'no reason given' });
  });

  it('is stale for another version or no answer', () => {
    assert.deepEqual(rewriteOutcome({ edit, version: 4, reason: null }, 3), { kind: 'stale' });
    assert.deepEqual(rewriteOutcome(null, 3), { kind: 'stale' });
  });

  it('words the warning as the contract says', () => {
    assert.equal(refusedMessage('it changes nothing'), 'diffusion-ls: rewrite refused: it changes nothing');
  });
});

describe('asksForInstruction', () => {
  const status = { backend: 'embedded', loaded: true };

  it('asks only when the server says the model follows instructions', () => {
    assert.equal(asksForInstruction({ ...status, capabilities: { instructions: true, streams: true } }), true);
    assert.equal(asksForInstruction({ ...status, capabilities: { instructions: false, streams: true } }), false);
    assert.equal(asksForInstruction(status), false); // a server that does not say
    assert.equal(asksForInstruction(undefined), false); // no server
  });
});

describe('rewriteTarget', () => {
  const range = { start: { line: 1, character: 4 }, end: { line: 2, character: 0 } };

  it("reads the server's code action arguments: the document, the range, the mode", () => {
    const args = [{ textDocument: { uri: 'file:///a.py' }, range, mode: 'refine' }];
    assert.deepEqual(rewriteTarget(args), { uri: 'file:///a.py', range, mode: 'refine' });
    assert.deepEqual(rewriteTarget([{ textDocument: { uri: 'file:///a.py' }, range }]), { uri: 'file:///a.py', range });
  });

  it('is undefined for anything else, so the command goes to the server as it is', () => {
    for (const args of [undefined, [], ['x'], [{ range }], [{ textDocument: { uri: 1 }, range }],
      [{ textDocument: { uri: 'file:///a.py' }, range: { start: { line: 1 } } }],
      [{ textDocument: { uri: 'file:///a.py' }, range: { start: { line: 0.5, character: 0 }, end: range.end } }]]) {
      assert.equal(rewriteTarget(args), undefined, JSON.stringify(args));
    }
  });
});

describe('refusedCompletionNote', () => {
  it('says why an asked-for completion came back empty', () => {
    const note = refusedCompletionNote({ items: [] }, 'the answer would add parse errors: `)`');
    assert.equal(note, 'no suggestion: the answer would add parse errors: `)`');
    assert.equal(refusedCompletionNote([], ' unsure '), 'no suggestion: unsure');
    assert.equal(refusedCompletionNote(null, 'unsure'), 'no suggestion: unsure');
  });

  it('says nothing when there is a suggestion, or no reason', () => {
    assert.equal(refusedCompletionNote({ items: [{ insertText: 'x' }] }, 'unsure'), undefined);
    assert.equal(refusedCompletionNote([{ insertText: 'x' }], 'unsure'), undefined);
    assert.equal(refusedCompletionNote({ items: [] }, null), undefined);
    assert.equal(refusedCompletionNote({ items: [] }, '  '), undefined);
  });
});

describe('shortNote', () => {
  it('cuts a long note at a word, with an ellipsis, and leaves a short one', () => {
    const long = "no suggestion: the answer's parameters leave out `cur_len`, which the function's body reads, and more";
    const note = shortNote(long, 60);
    assert.ok(note.length <= 60 && note.endsWith('…') && long.startsWith(note.slice(0, -1)), note);
    assert.equal(note, "no suggestion: the answer's parameters leave out…"); // cut at a space, not inside a word
    assert.equal(shortNote('no suggestion: unsure', 60), 'no suggestion: unsure');
  });
});

describe('fillOutcome', () => {
  const kept = [{ range: { start: { line: 7, character: 4 }, end: { line: 7, character: 7 } }, reason: 'empty' }];

  it('is ready with the edits for the version it was asked at, and the kept placeholders', () => {
    assert.deepEqual(fillOutcome({ edits: [edit], kept, version: 3 }, 3), { kind: 'ready', edits: [edit], kept });
    assert.deepEqual(fillOutcome({ edits: [edit], version: 3 }, 3), { kind: 'ready', edits: [edit], kept: [] });
  });

  it('is none when nothing was filled, stale for another version or no answer', () => {
    assert.deepEqual(fillOutcome({ edits: [], kept, version: 3 }, 3), { kind: 'none', kept });
    assert.deepEqual(fillOutcome({ edits: null, kept: null, version: 3 }, 3), { kind: 'none', kept: [] });
    assert.deepEqual(fillOutcome({ edits: [edit], kept, version: 4 }, 3), { kind: 'stale' });
    assert.deepEqual(fillOutcome(null, 3), { kind: 'stale' });
  });
});

describe('fillMessage', () => {
  const at = (line: number, reason: string) => ({
    range: { start: { line, character: 4 }, end: { line, character: 7 } },
    reason,
  });

  it('says how many were filled, to accept or reject', () => {
    assert.deepEqual(fillMessage(0, []), { text: 'Diffusion: no placeholder to fill', warn: false });
    assert.deepEqual(fillMessage(1, []), { text: 'Diffusion: filled 1 placeholder: accept or reject', warn: false });
    assert.deepEqual(fillMessage(3, []), { text: 'Diffusion: filled 3 placeholders: accept or reject', warn: false });
  });

  it('lists the kept ones by reason, the commonest first, a few lines each', () => {
    assert.deepEqual(fillMessage(2, [at(7, 'the same text')]), {
      text: 'Diffusion: filled 2 of 3 placeholders: accept or reject; kept 1: the same text (line 8)',
      warn: true,
    });
    const many = [at(0, 'too far'), ...[1, 2, 3, 4, 5, 6, 7, 8, 9].map((i) => at(i * 10, 'past the first 32'))];
    assert.deepEqual(fillMessage(0, many), {
      text:
        'Diffusion: filled none of 10 placeholders; kept 10: past the first 32 (lines 11, 21, 31, 41, 51, 61 and 3 ' +
        'more); too far (line 1)',
      warn: true,
    });
    assert.equal(fillMessage(0, [at(1, '')]).text, 'Diffusion: filled none of 1 placeholder; kept 1: no reason given (line 2)');
  });
});
