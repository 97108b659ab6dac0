import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CanvasParams,
  completionPreview,
  inlineSegments,
  isNewerRequest,
  keysRenderInOrder,
  rewritePreview,
  routeCanvas,
  toSegments,
} from '../src/canvas';

const at = (line: number, character: number) => ({ line, character });

function canvas(partial: Partial<CanvasParams>): CanvasParams {
  return {
    uri: 'file:///w/a.py',
    version: 3,
    id: 7,
    step: 1,
    nfe: 1,
    range: { start: at(4, 8), end: at(4, 8) },
    text: '',
    masks: [],
    done: false,
    ...partial,
  };
}

describe('toSegments', () => {
  it('splits text and masked runs at the mask offsets', () => {
    assert.deepEqual(toSegments('ret··n x', [[3, 5]]), [
      { kind: 'text', text: 'ret' },
      { kind: 'mask', text: '··' },
      { kind: 'text', text: 'n x' },
    ]);
  });

  it('merges overlapping and unsorted ranges and clamps them to the text', () => {
    assert.deepEqual(toSegments('a····b', [[3, 5], [1, 4], [5, 99]]), [
      { kind: 'text', text: 'a' },
      { kind: 'mask', text: '····b' },
    ]);
  });

  it('counts mask offsets in UTF-16 code units, as the server sends them', () => {
    // "😀" is two code units, so the dot after it is [2, 3).
    assert.deepEqual(toSegments('😀·x', [[2, 3]]), [
      { kind: 'text', text: '😀' },
      { kind: 'mask', text: '·' },
      { kind: 'text', text: 'x' },
    ]);
  });

  it('never splits a surrogate pair', () => {
    assert.deepEqual(toSegments('a😀', [[2, 3]]), [
      { kind: 'text', text: 'a' },
      { kind: 'mask', text: '😀' },
    ]);
  });

  it('is all text when nothing is masked, empty for an empty canvas', () => {
    assert.deepEqual(toSegments('done', []), [{ kind: 'text', text: 'done' }]);
    assert.deepEqual(toSegments('', [[0, 3]]), []);
  });
});

describe('inlineSegments', () => {
  it('turns spaces and tabs into non-breaking spaces', () => {
    assert.deepEqual(inlineSegments([{ kind: 'text', text: 'a b\tc' }], { tabSize: 2, maxChars: 100 }), [
      { kind: 'text', text: 'a\u00a0b\u00a0\u00a0c' },
    ]);
  });

  it('draws a line break as a mark and folds the next line indentation into it', () => {
    const segments = toSegments(':\n    return ··', [[13, 15]]);
    assert.deepEqual(inlineSegments(segments), [
      { kind: 'text', text: ':' },
      { kind: 'mark', text: ' ⏎ ' },
      { kind: 'text', text: 'return\u00a0' },
      { kind: 'mask', text: '··' },
    ]);
  });

  it('cuts long canvases with an ellipsis', () => {
    assert.deepEqual(inlineSegments([{ kind: 'mask', text: '·'.repeat(10) }], { tabSize: 4, maxChars: 4 }), [
      { kind: 'mask', text: '····' },
      { kind: 'text', text: '…' },
    ]);
  });
});

describe('completionPreview', () => {
  it('anchors at the cursor and keeps the canvas order', () => {
    const preview = completionPreview(canvas({ text: 'x = ··\ny', masks: [[4, 6]] }));
    assert.deepEqual(preview.anchor, at(4, 8));
    assert.deepEqual(preview.segments, [
      { kind: 'text', text: 'x\u00a0=\u00a0' },
      { kind: 'mask', text: '··' },
      { kind: 'mark', text: ' ⏎ ' },
      { kind: 'text', text: 'y' },
    ]);
    assert.equal(preview.lines, 2);
    assert.equal(preview.maskedCount, 2);
  });
});

describe('rewritePreview', () => {
  it('strikes the selected range and draws an arrow and the new text after its end', () => {
    const range = { start: at(1, 4), end: at(3, 10) };
    const preview = rewritePreview(canvas({ range, text: 'return ·', masks: [[7, 8]] }));
    assert.deepEqual(preview.struck, range);
    assert.deepEqual(preview.anchor, at(3, 10));
    assert.deepEqual(preview.segments, [
      { kind: 'mark', text: ' → ' },
      { kind: 'text', text: 'return\u00a0' },
      { kind: 'mask', text: '·' },
    ]);
  });
});

describe('routeCanvas', () => {
  const selection = { start: at(1, 0), end: at(2, 5) };

  it('sends canvases over the pending rewrite range to the rewrite', () => {
    assert.equal(routeCanvas(canvas({ range: selection }), { uri: 'file:///w/a.py', range: selection }), 'rewrite');
  });

  it('sends empty-range canvases to the completion preview', () => {
    assert.equal(routeCanvas(canvas({}), { uri: 'file:///w/a.py', range: selection }), 'completion');
    assert.equal(routeCanvas(canvas({}), undefined), 'completion');
  });

  it('ignores other ranges (infill, a rewrite in another document)', () => {
    assert.equal(routeCanvas(canvas({ range: selection }), undefined), 'ignore');
    assert.equal(routeCanvas(canvas({ range: selection }), { uri: 'file:///w/b.py', range: selection }), 'ignore');
  });

  it('sends a last canvas over the rest of the line to the completion preview, which it ends', () => {
    const rest = { start: at(4, 8), end: at(4, 12) };
    assert.equal(routeCanvas(canvas({ range: rest, done: true }), undefined), 'completion');
  });
});

describe('isNewerRequest', () => {
  it('orders numeric ids and treats any other string id as newer', () => {
    assert.equal(isNewerRequest(5, undefined), true);
    assert.equal(isNewerRequest(6, 5), true);
    assert.equal(isNewerRequest(4, 5), false);
    assert.equal(isNewerRequest(5, 5), false);
    assert.equal(isNewerRequest('b', 'a'), true);
  });
});

describe('keysRenderInOrder', () => {
  it('accepts keys whose class names sort in creation order', () => {
    assert.equal(keysRenderInOrder(['TextEditorDecorationType7', 'TextEditorDecorationType8']), true);
    assert.equal(keysRenderInOrder(['TextEditorDecorationType1', 'TextEditorDecorationType12']), true);
    assert.equal(keysRenderInOrder([]), true);
  });

  it('rejects a batch that rolls over to one more digit', () => {
    assert.equal(keysRenderInOrder(['TextEditorDecorationType9', 'TextEditorDecorationType10']), false);
  });
});
