import * as vscode from 'vscode';
import { LspPosition, Segment, SegmentKind } from './canvas';

const KINDS: SegmentKind[] = ['text', 'mask', 'newline'];

/**
 * Draws preview segments as after-text decorations at one position: decided text in the ghost-text colour, masked
 * slots in the faint whitespace colour, line breaks as a faint "⏎".
 */
export class SegmentDecorations implements vscode.Disposable {
  private readonly types = new Map<SegmentKind, vscode.TextEditorDecorationType>(
    KINDS.map((kind) => [
      kind,
      vscode.window.createTextEditorDecorationType({
        after: {
          color: new vscode.ThemeColor(kind === 'text' ? 'editorGhostText.foreground' : 'editorWhitespace.foreground'),
          fontStyle: kind === 'text' ? 'italic' : 'normal',
        },
        rangeBehavior: vscode.DecorationRangeBehavior.ClosedClosed,
      }),
    ]),
  );

  draw(editor: vscode.TextEditor, at: LspPosition, segments: Segment[], hover?: vscode.MarkdownString): void {
    const position = new vscode.Position(at.line, at.character);
    const range = new vscode.Range(position, position);
    for (const kind of KINDS) {
      const options: vscode.DecorationOptions[] = [];
      segments.forEach((segment, index) => {
        if (segment.kind !== kind) return;
        // One decoration per segment, all at the same position; `index` keeps them in canvas order.
        options.push({ range, hoverMessage: hover, renderOptions: { after: { contentText: segment.text } } });
        void index;
      });
      editor.setDecorations(this.types.get(kind)!, options);
    }
  }

  clear(editor: vscode.TextEditor): void {
    for (const type of this.types.values()) editor.setDecorations(type, []);
  }

  dispose(): void {
    for (const type of this.types.values()) type.dispose();
  }
}
