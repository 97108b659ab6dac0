import * as vscode from 'vscode';
import type { BaseLanguageClient } from 'vscode-languageclient';
import { ErrorCodes, ResponseError } from 'vscode-languageclient/node';
import { CanvasParams, PendingRewrite, PreviewRow, rewritePreview } from './canvas';
import { SegmentDecorations } from './decorate';
import {
  asksForInstruction,
  refusedMessage,
  RewriteResult,
  rewriteOutcome,
  RewriteTarget,
  TextEdit,
} from './outcome';
import { ServerStatus } from './statusText';
import { Throttle } from './throttle';

interface Session extends PendingRewrite {
  editor: vscode.TextEditor;
  version: number;
  tokens: vscode.CancellationTokenSource;
  edit?: TextEdit; // the answer, ready to accept
  nfe: number;
}

const CONTEXT_KEY = 'diffusionLs.rewritePending';
/** At most one CodeLens refresh this often while canvases stream: VS Code waits for a quiet spell (throttle.ts). */
const LENS_MS = 400;

/**
 * "Diffusion: Rewrite Selection": streams the rewrite over the selection (old text struck through, new text after it)
 * and changes the document only on accept. Any edit to the document meanwhile rejects the rewrite.
 */
export class RewriteController implements vscode.CodeLensProvider, vscode.Disposable {
  private readonly struck = vscode.window.createTextEditorDecorationType({
    textDecoration: 'line-through',
    opacity: '0.55',
    backgroundColor: new vscode.ThemeColor('diffEditor.removedTextBackground'),
  });
  private readonly decorations = new SegmentDecorations();
  private readonly lensesChanged = new vscode.EventEmitter<void>();
  readonly onDidChangeCodeLenses = this.lensesChanged.event;
  private readonly lenses = new Throttle(() => this.lensesChanged.fire(), LENS_MS);
  private readonly subscriptions: vscode.Disposable[] = [this.struck, this.decorations, this.lensesChanged];
  private session: Session | undefined;

  constructor(
    private readonly client: () => BaseLanguageClient | undefined,
    private readonly track: <T>(work: Thenable<T>) => Promise<T>,
    private readonly status: () => Promise<ServerStatus | undefined>,
  ) {
    this.subscriptions.push(
      vscode.workspace.onDidChangeTextDocument((e) => {
        if (this.session && e.contentChanges.length > 0 && e.document === this.session.editor.document) this.reject();
      }),
    );
  }

  /** The rewrite the canvases may belong to. */
  get pending(): PendingRewrite | undefined {
    return this.session;
  }

  /** Rewrite the selection, or a code action's `target` (its document's editor and range, its mode). */
  async rewriteSelection(target?: RewriteTarget): Promise<void> {
    const client = this.client();
    const editor = target
      ? vscode.window.visibleTextEditors.find((e) => e.document.uri.toString() === target.uri)
      : vscode.window.activeTextEditor;
    if (!editor) return;
    if (!client) {
      void vscode.window.showWarningMessage('Diffusion: the server is not running (see Diffusion: Show Output).');
      return;
    }
    const selection = target ? client.protocol2CodeConverter.asRange(target.range) : editor.selection;
    if (selection.isEmpty) {
      void vscode.window.showInformationMessage('Diffusion: select the code to rewrite first.');
      return;
    }
    const instruction = asksForInstruction(await this.status())
      ? await vscode.window.showInputBox({
          title: 'Diffusion: Rewrite Selection',
          prompt: 'Optional instruction (Enter for none)',
          placeHolder: 'e.g. use a list comprehension',
        })
      : ''; // this model ignores instructions: nothing to ask
    if (instruction === undefined) return; // Escape
    this.reject();
    const range = client.code2ProtocolConverter.asRange(selection);
    const session: Session = {
      editor,
      uri: editor.document.uri.toString(),
      version: editor.document.version,
      range,
      tokens: new vscode.CancellationTokenSource(),
      nfe: 0,
    };
    this.session = session;
    editor.setDecorations(this.struck, [selection]);
    await this.setPending(true);
    const mode =
      target?.mode ?? vscode.workspace.getConfiguration('diffusionLs').get<string>('rewrite.mode', 'regenerate');
    const params = {
      textDocument: { uri: session.uri },
      range,
      mode,
      ...(instruction.trim() ? { instruction: instruction.trim() } : {}),
    };
    try {
      const result = await this.track(
        client.sendRequest<RewriteResult | null>('diffusion/rewrite', params, session.tokens.token),
      );
      if (this.session !== session) return;
      const outcome = rewriteOutcome(result, editor.document.version);
      if (outcome.kind !== 'ready') {
        this.reject();
        if (outcome.kind === 'refused') void vscode.window.showWarningMessage(refusedMessage(outcome.reason));
        return;
      }
      session.edit = outcome.edit;
      this.drawText(outcome.edit.newText);
      this.lenses.flush();
    } catch (error) {
      if (this.session !== session) return;
      this.reject();
      if (!session.tokens.token.isCancellationRequested) {
        // InvalidParams: the server cannot take the selection as asked (too long: select less), and says why
        if (error instanceof ResponseError && error.code === ErrorCodes.InvalidParams) {
          void vscode.window.showWarningMessage(`Diffusion: cannot rewrite: ${error.message}`);
        } else {
          void vscode.window.showErrorMessage(`Diffusion: rewrite failed: ${String(error)}`);
        }
      }
    }
  }

  /** Draws a canvas of the rewrite in flight. */
  onCanvas(canvas: CanvasParams): void {
    const session = this.session;
    if (!session || session.edit || canvas.version !== session.version) return;
    session.nfe = canvas.nfe;
    if (canvas.done && canvas.reason) this.decorations.clear(); // refused: the answer says why
    else this.decorations.drawRows(session.editor, this.rows(canvas), this.hover(canvas.text));
    this.lenses.run();
  }

  async accept(): Promise<void> {
    const session = this.session;
    if (!session?.edit) return; // still denoising: nothing to accept yet
    const client = this.client();
    const edit = client?.protocol2CodeConverter.asTextEdit(session.edit);
    this.clear();
    if (!edit) return;
    const workspaceEdit = new vscode.WorkspaceEdit();
    workspaceEdit.replace(session.editor.document.uri, edit.range, edit.newText);
    await vscode.workspace.applyEdit(workspaceEdit);
  }

  reject(): void {
    this.session?.tokens.cancel();
    this.clear();
  }

  provideCodeLenses(document: vscode.TextDocument): vscode.CodeLens[] {
    const session = this.session;
    if (!session || document !== session.editor.document) return [];
    const at = new vscode.Range(session.range.start.line, 0, session.range.start.line, 0);
    if (!session.edit) {
      return [
        new vscode.CodeLens(at, { title: `$(sync~spin) Rewriting… (${session.nfe} fwd)`, command: '' }),
        new vscode.CodeLens(at, { title: '$(close) Cancel', command: 'diffusionLs.rejectRewrite' }),
      ];
    }
    return [
      new vscode.CodeLens(at, { title: '$(check) Accept rewrite', command: 'diffusionLs.acceptRewrite' }),
      new vscode.CodeLens(at, { title: '$(close) Reject', command: 'diffusionLs.rejectRewrite' }),
    ];
  }

  private drawText(text: string): void {
    const session = this.session!;
    const canvas = { uri: session.uri, version: session.version, id: 0, step: 0, nfe: session.nfe, range: session.range };
    this.decorations.drawRows(session.editor, this.rows({ ...canvas, text, masks: [], done: true }), this.hover(text));
  }

  /** The canvas as rows beside the selected lines (canvas.ts). */
  private rows(canvas: CanvasParams): PreviewRow[] {
    const { document, options } = this.session!.editor;
    const lineText = (line: number) => (line < document.lineCount ? document.lineAt(line).text : undefined);
    const tabSize = typeof options.tabSize === 'number' ? options.tabSize : 4;
    return rewritePreview(canvas, lineText, { tabSize, maxChars: 200 }).rows;
  }

  private hover(text: string): vscode.MarkdownString {
    const languageId = this.session?.editor.document.languageId ?? '';
    return new vscode.MarkdownString('**Diffusion rewrite**').appendCodeblock(text, languageId);
  }

  private clear(): void {
    const session = this.session;
    this.session = undefined;
    this.lenses.cancel();
    if (session) {
      session.editor.setDecorations(this.struck, []);
      this.decorations.clear();
      session.tokens.dispose();
    }
    void this.setPending(false);
    this.lensesChanged.fire();
  }

  private async setPending(pending: boolean): Promise<void> {
    await vscode.commands.executeCommand('setContext', CONTEXT_KEY, pending);
  }

  dispose(): void {
    this.reject();
    this.lenses.cancel();
    for (const s of this.subscriptions) s.dispose();
  }
}
