import * as vscode from 'vscode';
import type { BaseLanguageClient } from 'vscode-languageclient';
import { ErrorCodes, ResponseError } from 'vscode-languageclient/node';
import { CanvasParams, PendingEdit, PreviewRow, rewritePreview } from './canvas';
import { SegmentDecorations } from './decorate';
import {
  asksForInstruction,
  fillMessage,
  fillOutcome,
  InfillResult,
  refusedMessage,
  RewriteResult,
  rewriteOutcome,
  RewriteTarget,
  TextEdit,
} from './outcome';
import { ServerStatus } from './statusText';
import { Throttle } from './throttle';

interface Session extends PendingEdit {
  kind: 'rewrite' | 'fill';
  editor: vscode.TextEditor;
  version: number;
  tokens: vscode.CancellationTokenSource;
  edits?: TextEdit[]; // the answer, ready to accept: a rewrite's one edit, a fill's one per placeholder
  at: number; // the line of the lens while it runs
  nfe: number;
}

const CONTEXT_KEY = 'diffusionLs.rewritePending';
/** At most one CodeLens refresh this often while canvases stream: VS Code waits for a quiet spell (throttle.ts). */
const LENS_MS = 400;

/**
 * "Diffusion: Rewrite Selection" streams the rewrite over the selection (old text struck through, new text after it);
 * "Diffusion: Fill Placeholders" shows each placeholder's fill the same way. Either changes the document only on
 * accept, as one undo step. Any edit to the document meanwhile rejects it.
 */
export class RewriteController implements vscode.CodeLensProvider, vscode.Disposable {
  private readonly struck = vscode.window.createTextEditorDecorationType({
    textDecoration: 'line-through',
    opacity: '0.55',
    backgroundColor: new vscode.ThemeColor('diffEditor.removedTextBackground'),
  });
  /** A placeholder the fill kept as it was: underlined, the reason in its hover. */
  private readonly kept = vscode.window.createTextEditorDecorationType({
    textDecoration: 'underline wavy',
    color: new vscode.ThemeColor('editorWarning.foreground'),
  });
  private readonly decorations = new SegmentDecorations();
  private readonly lensesChanged = new vscode.EventEmitter<void>();
  readonly onDidChangeCodeLenses = this.lensesChanged.event;
  private readonly lenses = new Throttle(() => this.lensesChanged.fire(), LENS_MS);
  private readonly subscriptions: vscode.Disposable[] = [this.struck, this.kept, this.decorations, this.lensesChanged];
  private session: Session | undefined;
  /** The editor whose kept placeholders are underlined (markKept). */
  private keptOn: vscode.TextEditor | undefined;

  constructor(
    private readonly client: () => BaseLanguageClient | undefined,
    private readonly track: <T>(work: Thenable<T>) => Promise<T>,
    private readonly status: () => Promise<ServerStatus | undefined>,
  ) {
    this.subscriptions.push(
      vscode.workspace.onDidChangeTextDocument((e) => {
        if (e.contentChanges.length === 0) return;
        if (this.session && e.document === this.session.editor.document) this.reject();
        if (this.keptOn && e.document === this.keptOn.document) this.markKept(this.keptOn, []);
      }),
    );
  }

  /** The rewrite or fill the canvases may belong to. */
  get pending(): PendingEdit | undefined {
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
      kind: 'rewrite',
      editor,
      uri: editor.document.uri.toString(),
      version: editor.document.version,
      range,
      tokens: new vscode.CancellationTokenSource(),
      at: range.start.line,
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
      session.edits = [outcome.edit];
      this.drawEdits(session);
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

  /**
   * Fill every placeholder (`...`, a lone `pass`, TODO markers) of the document, or of the selection, a canvas each.
   * Each fill is shown over its placeholder as a rewrite is; the placeholders the server kept are reported, with why.
   */
  async fillPlaceholders(): Promise<void> {
    const client = this.client();
    const editor = vscode.window.activeTextEditor;
    if (!editor) return;
    if (!client) {
      void vscode.window.showWarningMessage('Diffusion: the server is not running (see Diffusion: Show Output).');
      return;
    }
    this.reject();
    if (this.keptOn) this.markKept(this.keptOn, []); // the last fill's, when it had nothing to accept
    const selection = editor.selection;
    const session: Session = {
      kind: 'fill',
      editor,
      uri: editor.document.uri.toString(),
      version: editor.document.version,
      tokens: new vscode.CancellationTokenSource(),
      at: selection.isEmpty ? selection.active.line : selection.start.line,
      nfe: 0,
    };
    this.session = session;
    await this.setPending(true);
    this.lenses.flush();
    const params = {
      textDocument: { uri: session.uri },
      ...(selection.isEmpty ? {} : { ranges: [client.code2ProtocolConverter.asRange(selection)] }),
    };
    try {
      const result = await this.track(
        client.sendRequest<InfillResult | null>('diffusion/infill', params, session.tokens.token),
      );
      if (this.session !== session) return;
      const outcome = fillOutcome(result, editor.document.version);
      if (outcome.kind === 'stale') return this.reject();
      const message = fillMessage(outcome.kind === 'ready' ? outcome.edits.length : 0, outcome.kept);
      if (outcome.kind === 'ready') {
        session.edits = outcome.edits;
        this.drawEdits(session);
        this.markKept(editor, outcome.kept);
        this.lenses.flush();
        const first = client.protocol2CodeConverter.asRange(outcome.edits[0].range);
        editor.revealRange(first, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
      } else {
        this.reject();
        this.markKept(editor, outcome.kept); // nothing to accept: still show which were kept, and why
      }
      if (message.warn) void vscode.window.showWarningMessage(message.text);
      else void vscode.window.showInformationMessage(message.text);
    } catch (error) {
      if (this.session !== session) return;
      this.reject();
      if (!session.tokens.token.isCancellationRequested) {
        // InvalidParams: nothing to fill where asked (the user's to change, not a failure), and the server says why
        if (error instanceof ResponseError && error.code === ErrorCodes.InvalidParams) {
          void vscode.window.showWarningMessage(`Diffusion: ${error.message}`);
        } else {
          void vscode.window.showErrorMessage(`Diffusion: fill failed: ${String(error)}`);
        }
      }
    }
  }

  /** Draws a canvas of the rewrite in flight; a fill's only counts its forwards (its fills are drawn at the end). */
  onCanvas(canvas: CanvasParams): void {
    const session = this.session;
    if (!session || session.edits || canvas.version !== session.version) return;
    session.nfe = canvas.nfe;
    if (session.kind === 'fill') session.at = canvas.range.start.line; // the lens goes to the first placeholder
    if (session.kind === 'rewrite') {
      if (canvas.done && canvas.reason) this.decorations.clear(); // refused: the answer says why
      else this.decorations.drawRows(session.editor, this.rows(canvas), this.hover(canvas.text));
    }
    this.lenses.run();
  }

  async accept(): Promise<void> {
    const session = this.session;
    if (!session?.edits) return; // still denoising: nothing to accept yet
    const client = this.client();
    this.clear();
    if (!client) return;
    const workspaceEdit = new vscode.WorkspaceEdit(); // one edit: one undo step
    for (const e of session.edits) {
      workspaceEdit.replace(session.editor.document.uri, client.protocol2CodeConverter.asRange(e.range), e.newText);
    }
    await vscode.workspace.applyEdit(workspaceEdit);
  }

  reject(): void {
    const session = this.session;
    session?.tokens.cancel();
    this.clear();
    if (session?.kind === 'fill') this.markKept(session.editor, []);
  }

  provideCodeLenses(document: vscode.TextDocument): vscode.CodeLens[] {
    const session = this.session;
    if (!session || document !== session.editor.document) return [];
    const line = (n: number) => new vscode.Range(n, 0, n, 0);
    if (!session.edits) {
      const running = session.kind === 'rewrite' ? 'Rewriting' : 'Filling placeholders';
      return [
        new vscode.CodeLens(line(session.at), { title: `$(sync~spin) ${running}… (${session.nfe} fwd)`, command: '' }),
        new vscode.CodeLens(line(session.at), { title: '$(close) Cancel', command: 'diffusionLs.rejectRewrite' }),
      ];
    }
    if (session.kind === 'rewrite') {
      return [
        new vscode.CodeLens(line(session.at), { title: '$(check) Accept rewrite', command: 'diffusionLs.acceptRewrite' }),
        new vscode.CodeLens(line(session.at), { title: '$(close) Reject', command: 'diffusionLs.rejectRewrite' }),
      ];
    }
    // a fill's lenses over each placeholder: they may be screens apart
    const n = session.edits.length;
    return session.edits.flatMap((e, i) => [
      new vscode.CodeLens(line(e.range.start.line), {
        title: n === 1 ? '$(check) Accept fill' : `$(check) Accept all ${n} fills (${i + 1} of ${n})`,
        command: 'diffusionLs.acceptRewrite',
      }),
      new vscode.CodeLens(line(e.range.start.line), {
        title: n === 1 ? '$(close) Reject' : `$(close) Reject all ${n}`,
        command: 'diffusionLs.rejectRewrite',
      }),
    ]);
  }

  /** Underlines the placeholders a fill kept, the reason in the hover, until the document changes or the next fill. */
  private markKept(editor: vscode.TextEditor, kept: { range: TextEdit['range']; reason: string }[]): void {
    const client = this.client();
    if (!client) return;
    this.keptOn?.setDecorations(this.kept, []);
    this.keptOn = kept.length > 0 ? editor : undefined;
    editor.setDecorations(
      this.kept,
      kept.map((k) => ({
        range: client.protocol2CodeConverter.asRange(k.range),
        hoverMessage: `Diffusion kept this placeholder: ${k.reason}`,
      })),
    );
  }

  /** The answer's edits: each replaced range struck through, its new text beside it. */
  private drawEdits(session: Session): void {
    const client = this.client();
    const edits = session.edits ?? [];
    if (!client) return;
    session.editor.setDecorations(
      this.struck,
      edits.map((e) => client.protocol2CodeConverter.asRange(e.range)),
    );
    const rows = edits.flatMap((e, i) => {
      // a fill's text is drawn only beside its own lines, up to the next placeholder's: more is folded with "⏎"
      const next = i + 1 < edits.length ? edits[i + 1].range.start.line : Infinity;
      const canvas = { uri: session.uri, version: session.version, id: 0, step: 0, nfe: session.nfe, done: true };
      return this.rows({ ...canvas, range: e.range, text: e.newText, masks: [] }, next);
    });
    this.decorations.drawRows(session.editor, rows, this.hover(edits.map((e) => e.newText).join('\n\n')));
  }

  /** The canvas as rows beside the replaced lines (canvas.ts), none on line `stop` or after it. */
  private rows(canvas: CanvasParams, stop = Infinity): PreviewRow[] {
    const { document, options } = this.session!.editor;
    const lineText = (line: number) =>
      line < document.lineCount && (line < stop || line === canvas.range.start.line) ? document.lineAt(line).text : undefined;
    const tabSize = typeof options.tabSize === 'number' ? options.tabSize : 4;
    return rewritePreview(canvas, lineText, { tabSize, maxChars: 200 }).rows;
  }

  private hover(text: string): vscode.MarkdownString {
    const languageId = this.session?.editor.document.languageId ?? '';
    const title = this.session?.kind === 'fill' ? '**Diffusion fill**' : '**Diffusion rewrite**';
    return new vscode.MarkdownString(title).appendCodeblock(text, languageId);
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
