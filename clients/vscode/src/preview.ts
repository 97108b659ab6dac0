import * as vscode from 'vscode';
import { CanvasParams, completionPreview, isNewerRequest } from './canvas';
import { SegmentDecorations } from './decorate';

/**
 * Streams a completion's intermediate canvases at the cursor. When the request settles the preview is cleared and
 * VS Code's native inline suggestion (Tab, accept word, accept line) takes over.
 */
export class CompletionPreview implements vscode.Disposable {
  private readonly decorations = new SegmentDecorations();
  private readonly subscriptions: vscode.Disposable[] = [this.decorations];
  private editor: vscode.TextEditor | undefined;
  private lastId: number | string | undefined;
  private requests = 0;

  constructor(private readonly enabled: () => boolean) {
    this.subscriptions.push(
      vscode.window.onDidChangeActiveTextEditor(() => this.clear()),
      vscode.workspace.onDidChangeTextDocument((e) => e.document === this.editor?.document && this.clear()),
      vscode.window.onDidChangeTextEditorSelection((e) => e.textEditor === this.editor && this.clearIfMoved(e)),
    );
  }

  /** Wraps one inline completion request: the newest request's end clears the preview. */
  async around<T>(request: () => Thenable<T> | T): Promise<T> {
    const seq = ++this.requests;
    try {
      return await request();
    } finally {
      if (seq === this.requests) this.clear();
    }
  }

  onCanvas(canvas: CanvasParams): void {
    const editor = vscode.window.activeTextEditor;
    if (!this.enabled() || !editor || editor.document.uri.toString() !== canvas.uri) return;
    if (editor.document.version !== canvas.version) return; // typed since: stale
    if (canvas.id !== this.lastId && !isNewerRequest(canvas.id, this.lastId)) return; // a superseded request
    this.lastId = canvas.id;
    if (canvas.done) return this.clear();
    const preview = completionPreview(canvas, { tabSize: tabSize(editor), maxChars: 160 });
    const hover = new vscode.MarkdownString().appendCodeblock(canvas.text, editor.document.languageId);
    this.editor = editor;
    this.decorations.draw(editor, preview.anchor, preview.segments, hover);
  }

  clear(): void {
    if (this.editor) this.decorations.clear(this.editor);
    this.editor = undefined;
  }

  private clearIfMoved(e: vscode.TextEditorSelectionChangeEvent): void {
    if (e.kind !== vscode.TextEditorSelectionChangeKind.Command) this.clear();
  }

  dispose(): void {
    this.clear();
    for (const s of this.subscriptions) s.dispose();
  }
}

function tabSize(editor: vscode.TextEditor): number {
  return typeof editor.options.tabSize === 'number' ? editor.options.tabSize : 4;
}
