import * as vscode from 'vscode';
import { shortNote } from './outcome';

/**
 * Why a completion the user asked for was refused, dimmed at the end of the cursor's line until the cursor moves, the
 * text changes or another editor is shown (as the Neovim client does): VS Code itself shows nothing for an empty
 * answer, and a status bar message is easy to miss.
 */
// the line, the note's margin (about 3 columns) and the note together, under a 100-column editor less the 4 columns
// VS Code scrolls past the last one (editor.scrollBeyondLastColumn): at 96 a re-trial still got a scrollbar
const NOTE_COLUMNS = 88;

export class RefusalNote implements vscode.Disposable {
  private readonly type = vscode.window.createTextEditorDecorationType({
    after: { color: new vscode.ThemeColor('editorCodeLens.foreground'), fontStyle: 'italic', margin: '0 0 0 2em' },
  });
  private editor: vscode.TextEditor | undefined;
  private watching: vscode.Disposable[] = [];

  show(editor: vscode.TextEditor, line: number, text: string): void {
    this.clear();
    const lineAt = editor.document.lineAt(Math.min(line, editor.document.lineCount - 1));
    const end = lineAt.range.end;
    // within NOTE_COLUMNS with the line (a note cut at 90 chars after a 54-char line gave the editor a horizontal
    // scrollbar); the whole reason is in the hover and the status bar
    editor.setDecorations(this.type, [{
      range: new vscode.Range(end, end),
      hoverMessage: text,
      renderOptions: { after: { contentText: shortNote(text, Math.max(30, NOTE_COLUMNS - 3 - lineAt.text.length)) } },
    }]);
    this.editor = editor;
    const at = editor.selection.active;
    this.watching = [
      vscode.window.onDidChangeTextEditorSelection((e) => {
        if (e.textEditor !== editor || !e.selections[0].active.isEqual(at)) this.clear();
      }),
      vscode.workspace.onDidChangeTextDocument((e) => e.document === editor.document && e.contentChanges.length && this.clear()),
      vscode.window.onDidChangeActiveTextEditor(() => this.clear()),
    ];
  }

  clear(): void {
    this.watching.forEach((d) => d.dispose());
    this.watching = [];
    this.editor?.setDecorations(this.type, []);
    this.editor = undefined;
  }

  dispose(): void {
    this.clear();
    this.type.dispose();
  }
}
