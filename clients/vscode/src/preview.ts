import * as vscode from 'vscode';
import { CanvasParams, completionPreview, LatestRequest } from './canvas';
import { SegmentDecorations } from './decorate';

/** Canvases closer together than this are coalesced: only the latest is drawn. */
const FRAME_MS = 16;

/**
 * Streams a completion's intermediate canvases at the cursor. When the request settles the preview is cleared and
 * VS Code's native inline suggestion (Tab, accept word, accept line) takes over.
 */
export class CompletionPreview implements vscode.Disposable {
  private readonly decorations = new SegmentDecorations();
  private readonly subscriptions: vscode.Disposable[] = [this.decorations];
  private readonly latest = new LatestRequest();
  private requests = 0;
  private pending: CanvasParams | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private drawnAt = 0;
  private reason: string | undefined; // why the server refused the newest request's result, if it did
  private automatic = false; // the newest request was made as the user typed

  /** `enabled(automatic)`: whether a request's canvases are drawn, by how it was made. */
  constructor(private readonly enabled: (automatic: boolean) => boolean) {
    this.subscriptions.push(
      vscode.window.onDidChangeActiveTextEditor(() => this.clear()),
      vscode.workspace.onDidChangeTextDocument((e) => e.contentChanges.length > 0 && this.clear()),
      vscode.window.onDidChangeTextEditorSelection(() => this.clear()),
    );
  }

  /** Wraps one inline completion request: the newest request's end clears the preview. */
  async around<T>(request: () => Thenable<T> | T, automatic = false): Promise<T> {
    const seq = ++this.requests;
    this.reason = undefined;
    this.automatic = automatic;
    try {
      return await request();
    } finally {
      if (seq === this.requests) this.clear();
    }
  }

  onCanvas(canvas: CanvasParams): void {
    if (!this.latest.admit(canvas.id)) return; // a superseded request
    if (canvas.done) {
      this.reason = canvas.reason ?? undefined;
      return this.clear(); // VS Code's inline suggestion takes over, or nothing when refused
    }
    this.pending = canvas;
    const wait = this.drawnAt + FRAME_MS - Date.now();
    if (wait <= 0) this.draw();
    else this.timer ??= setTimeout(() => this.draw(), wait);
  }

  /** Why the server refused the newest request's result (its last canvas's reason), if it did. */
  get refusal(): string | undefined {
    return this.reason;
  }

  /** A new server: its request ids start again. */
  reset(): void {
    this.latest.reset();
    this.clear();
  }

  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.pending = undefined;
    this.decorations.clear();
  }

  private draw(): void {
    this.timer = undefined;
    const canvas = this.pending;
    this.pending = undefined;
    const editor = vscode.window.activeTextEditor;
    if (!canvas || !this.enabled(this.automatic) || !editor || editor.document.uri.toString() !== canvas.uri) return;
    if (editor.document.version !== canvas.version) return; // typed since: stale
    const tabSize = typeof editor.options.tabSize === 'number' ? editor.options.tabSize : 4;
    const preview = completionPreview(canvas, { tabSize, maxChars: 160 });
    const hover = new vscode.MarkdownString().appendCodeblock(canvas.text, editor.document.languageId);
    this.decorations.draw(editor, preview.anchor, preview.segments, hover);
    this.drawnAt = Date.now();
  }

  dispose(): void {
    this.clear();
    for (const s of this.subscriptions) s.dispose();
  }
}
