import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CanvasParams,
  completionPreview,
  displayWidth,
  inlineSegments,
  LatestRequest,
  LspRange,
  isNewerRequest,
  keysRenderInOrder,
  rewritePreview,
  routeCanvas,
  splitLines,
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
  const doc = ['def f(a):', '    x = 1', '\tyy', 'end'];
  const lineText = (line: number) => doc[line];
  const nb = (n: number) => '\u00a0'.repeat(n);

  it('draws fewer rows than the selected lines beside the narrowest of them, off a long first line', () => {
    const body = ['    word = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\\1_\\2", word)', '    word = word.lower()', '    x'];
    const range = { start: at(0, 4), end: at(2, 5) };
    const one = rewritePreview(canvas({ range, text: 'return camelize(word)', masks: [] }), (n) => body[n]);
    assert.deepEqual(one.rows.map((row) => row.anchor), [at(2, 5)]); // beside `    x`, the narrowest
    const two = rewritePreview(canvas({ range, text: 'a = 1\n    return a', masks: [] }), (n) => body[n]);
    assert.deepEqual(two.rows.map((row) => row.anchor.line), [1, 2]); // the narrowest run of two lines
    const whole = { start: at(0, 0), end: at(3, 0) }; // whole lines: the last line's start is not selected
    const three = rewritePreview(canvas({ range: whole, text: 'a\nb', masks: [] }), (n) => body[n]);
    assert.deepEqual(three.rows.map((row) => row.anchor.line), [1, 2]);
  });

  it('draws a one-line rewrite after its line, behind an arrow, and strikes the selection', () => {
    const range = { start: at(1, 4), end: at(1, 9) };
    const preview = rewritePreview(canvas({ range, text: 'y = ·', masks: [[4, 5]] }), lineText);
    assert.deepEqual(preview.struck, range);
    assert.deepEqual(preview.rows, [
      {
        anchor: at(1, 9),
        segments: [
          { kind: 'mark', text: `${nb(1)}→${nb(1)}` },
          { kind: 'text', text: `y${nb(1)}=${nb(1)}` },
          { kind: 'mask', text: '·' },
        ],
      },
    ]);
  });

  it('draws each line of a multi-line rewrite on its own row, in one column past the longest line, indented', () => {
    // lines 0-2 are 9, 9 and 6 columns wide (the tab counts 4): the column starts at 9 + 3
    const range = { start: at(0, 0), end: at(2, 3) };
    const preview = rewritePreview(canvas({ range, text: 'def g(b):\n    return ··\n', masks: [[21, 23]] }), lineText);
    assert.deepEqual(
      preview.rows.map((row) => row.anchor),
      [at(0, 9), at(1, 9), at(2, 3)],
    );
    assert.deepEqual(preview.rows[0].segments, [
      { kind: 'mark', text: `${nb(3)}→${nb(1)}` },
      { kind: 'text', text: `def${nb(1)}g(b):` },
    ]);
    assert.deepEqual(preview.rows[1].segments, [
      { kind: 'mark', text: `${nb(3)}│${nb(1)}` },
      { kind: 'text', text: `${nb(4)}return${nb(1)}` },
      { kind: 'mask', text: '··' },
    ]);
    assert.deepEqual(preview.rows[2].segments, [{ kind: 'mark', text: `${nb(6)}│${nb(1)}` }]);
  });

  it('starts the first of several rows after the text before the selection, so the block keeps its indentation', () => {
    const range = { start: at(1, 4), end: at(2, 3) }; // from "x = 1" to the end of "\tyy"
    const preview = rewritePreview(canvas({ range, text: 'z = 2\n    w', masks: [] }), lineText);
    assert.deepEqual(preview.rows[0].segments, [
      { kind: 'mark', text: `${nb(3)}→${nb(1)}` },
      { kind: 'text', text: `${nb(4)}z${nb(1)}=${nb(1)}2` },
    ]);
    assert.deepEqual(preview.rows[1].segments, [
      { kind: 'mark', text: `${nb(6)}│${nb(1)}` },
      { kind: 'text', text: `${nb(4)}w` },
    ]);
  });

  it('goes on beside blank lines below the range, and folds what would go beside other code', () => {
    const text = ['', 'def f(a):', '    x = 1', '', '', 'def g():', '    pass'];
    const rows = (range: LspRange, t: string) =>
      rewritePreview(canvas({ range, text: t, masks: [] }), (n) => text[n]).rows.map((r) => r.anchor.line);
    assert.deepEqual(rows({ start: at(2, 4), end: at(2, 9) }, 'y = 1\n    z = 2\n    w = 3'), [2, 3, 4]);
    const folded = rewritePreview(
      canvas({ range: { start: at(2, 4), end: at(2, 9) }, text: 'a\nb\nc\nd', masks: [] }),
      (n) => text[n],
    ).rows;
    assert.deepEqual(folded.map((r) => r.anchor.line), [2, 3, 4], 'not beside `def g():`');
    assert.deepEqual(folded[2].segments.slice(-3), [
      { kind: 'text', text: 'c' },
      { kind: 'mark', text: ' ⏎ ' },
      { kind: 'text', text: 'd' },
    ]);
  });

  it('folds the lines past the end of the document into the last row', () => {
    const range = { start: at(3, 0), end: at(3, 3) };
    const preview = rewritePreview(canvas({ range, text: 'a\nb\nc', masks: [] }), lineText);
    assert.equal(preview.rows.length, 1);
    assert.deepEqual(preview.rows[0].anchor, at(3, 3));
    assert.deepEqual(preview.rows[0].segments, [
      { kind: 'mark', text: `${nb(1)}→${nb(1)}` },
      { kind: 'text', text: 'a' },
      { kind: 'mark', text: ' ⏎ ' },
      { kind: 'text', text: 'b' },
      { kind: 'mark', text: ' ⏎ ' },
      { kind: 'text', text: 'c' },
    ]);
  });
});

describe('splitLines and displayWidth', () => {
  it('splits segments at line breaks, keeping each kind, dropping carriage returns', () => {
    assert.deepEqual(splitLines(toSegments('ab\r\n·c\n', [[4, 5]])), [
      [{ kind: 'text', text: 'ab' }],
      [
        { kind: 'mask', text: '·' },
        { kind: 'text', text: 'c' },
      ],
      [],
    ]);
  });

  it('counts tabs to the next tab stop', () => {
    assert.equal(displayWidth('\tx', 4), 5);
    assert.equal(displayWidth('ab\tx', 4), 5);
    assert.equal(displayWidth('abcd\t', 4), 8);
  });
});

describe('LatestRequest', () => {
  it('admits the newest request and drops the canvases of superseded ones', () => {
    const latest = new LatestRequest();
    assert.equal(latest.admit(5), true);
    assert.equal(latest.admit(5), true); // more canvases of the same request
    assert.equal(latest.admit(4), false);
    assert.equal(latest.admit(6), true);
    assert.equal(latest.admit(5), false);
  });

  it('admits a restarted server whose ids start again once reset', () => {
    const latest = new LatestRequest();
    latest.admit(41);
    assert.equal(latest.admit(2), false); // without a reset the new server's requests look old
    latest.reset();
    assert.equal(latest.admit(2), true);
    assert.equal(latest.admit(3), true);
  });
});

describe('routeCanvas', () => {
  const selection = { start: at(1, 0), end: at(2, 5) };

  it('sends canvases over the pending rewrite range to the rewrite', () => {
    assert.equal(routeCanvas(canvas({ range: selection }), { uri: 'file:///w/a.py', range: selection }), 'edit');
  });

  it("sends a pending fill its document's canvases over placeholders, and no completion's", () => {
    assert.equal(routeCanvas(canvas({ range: selection }), { uri: 'file:///w/a.py' }), 'edit');
    assert.equal(routeCanvas(canvas({}), { uri: 'file:///w/a.py' }), 'completion');
    assert.equal(routeCanvas(canvas({ range: selection }), { uri: 'file:///w/b.py' }), 'ignore');
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
