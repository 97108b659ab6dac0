import * as vscode from 'vscode';
import { keysRenderInOrder, LspPosition, PreviewRow, Segment, SegmentKind } from './canvas';

const COLORS: Record<SegmentKind, string> = {
  text: 'editorGhostText.foreground', // decided tokens look like ghost text
  mask: 'editorWhitespace.foreground', // still-masked slots are faint "·", like rendered whitespace
  mark: 'editorWhitespace.foreground', // line breaks, the arrow before a rewrite
};

/** Segments drawn at one position before the text is cut into fewer, wider runs. */
const MAX_SEGMENTS = 32;

/**
 * Draws preview segments as after-text decorations at one position: decided text in the ghost-text colour, masked
 * slots and line breaks faint.
 *
 * Several after-texts at one position are laid out in the order of their decoration types' CSS class names, which
 * VS Code derives from the type's `key`; per-instance render options would get hashed class names and come out
 * shuffled. So each segment gets its own decoration type with its text built in, and a batch of types whose keys
 * would not sort in creation order (a counter rolling over to one more digit) is made again.
 */
export class SegmentDecorations implements vscode.Disposable {
  private live: vscode.TextEditorDecorationType[] = [];

  draw(editor: vscode.TextEditor, at: LspPosition, segments: Segment[], hover?: vscode.MarkdownString): void {
    this.drawRows(editor, [{ anchor: at, segments }], hover);
  }

  /** Each row's segments at its own position (rows on different lines); the hover on the first. */
  drawRows(editor: vscode.TextEditor, rows: readonly PreviewRow[], hover?: vscode.MarkdownString): void {
    const runs = rows.flatMap((row) => fewer(row.segments).map((segment) => ({ at: row.anchor, segment })));
    let types = runs.map((run) => make(run.segment));
    for (let attempt = 0; attempt < 3 && !keysRenderInOrder(types.map((t) => t.key)); attempt++) {
      types.forEach((t) => t.dispose());
      types = runs.map((run) => make(run.segment));
    }
    types.forEach((type, i) => {
      const position = new vscode.Position(runs[i].at.line, runs[i].at.character);
      editor.setDecorations(type, [{ range: new vscode.Range(position, position), hoverMessage: i === 0 ? hover : undefined }]);
    });
    this.live.forEach((t) => t.dispose());
    this.live = types;
  }

  clear(): void {
    this.live.forEach((t) => t.dispose());
    this.live = [];
  }

  dispose(): void {
    this.clear();
  }
}

function make(segment: Segment): vscode.TextEditorDecorationType {
  return vscode.window.createTextEditorDecorationType({
    after: {
      contentText: segment.text,
      color: new vscode.ThemeColor(COLORS[segment.kind]),
      fontStyle: segment.kind === 'text' ? 'italic' : 'normal',
    },
    rangeBehavior: vscode.DecorationRangeBehavior.ClosedClosed,
  });
}

/** At most MAX_SEGMENTS runs: the tail is drawn as one text run. */
function fewer(segments: Segment[]): Segment[] {
  if (segments.length <= MAX_SEGMENTS) return segments;
  const tail = segments.slice(MAX_SEGMENTS - 1).map((s) => s.text).join('');
  return [...segments.slice(0, MAX_SEGMENTS - 1), { kind: 'mask', text: tail }];
}
