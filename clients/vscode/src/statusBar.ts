import * as vscode from 'vscode';
import { CanvasParams } from './canvas';
import { pollAfterMs, Progress, ServerStatus, statusText, statusTooltip } from './statusText';

const AS_YOU_TYPE = 'completions.enabled';

/** Whether typing in `document` asks for completions (`diffusionLs.completions.enabled`, which a language may override). */
export function completesAsYouType(document: vscode.TextDocument | undefined): boolean {
  return vscode.workspace.getConfiguration('diffusionLs', document).get<boolean>(AS_YOU_TYPE, true) !== false;
}

/**
 * Turns completion as you type off, or on again, where the active editor's value comes from: its language's override
 * when it has one, else the user's setting; says what it is now.
 */
export async function toggleAsYouType(): Promise<void> {
  const document = vscode.window.activeTextEditor?.document;
  const on = !completesAsYouType(document);
  const config = vscode.workspace.getConfiguration('diffusionLs', document);
  const seen = config.inspect<boolean>(AS_YOU_TYPE);
  const language = seen?.workspaceLanguageValue !== undefined || seen?.globalLanguageValue !== undefined;
  const target = seen?.workspaceLanguageValue !== undefined || (!language && seen?.workspaceValue !== undefined)
    ? vscode.ConfigurationTarget.Workspace
    : vscode.ConfigurationTarget.Global;
  await config.update(AS_YOU_TYPE, on, target, language);
  const where = language && document ? ` for ${document.languageId}` : '';
  void vscode.window.showInformationMessage(
    on
      ? `Diffusion: completions as you type on${where}`
      : `Diffusion: completions as you type off${where}; Trigger Inline Suggestion still asks`,
  );
}

/** The status bar item: backend and model, last latency and tokens per forward, a spinner while denoising. */
export class StatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
  private status: ServerStatus | undefined;
  private problem: string | undefined;
  private progress: Progress | undefined;
  private inFlight = 0;
  private poll: ReturnType<typeof setTimeout> | undefined;

  private readonly onEditor = vscode.window.onDidChangeActiveTextEditor(() => this.render());
  private readonly onSettings = vscode.workspace.onDidChangeConfiguration(
    (e) => e.affectsConfiguration('diffusionLs.completions.enabled') && this.render(),
  );

  constructor(
    command: string,
    private readonly fetchStatus: () => Promise<ServerStatus | undefined>,
  ) {
    this.item.name = 'Diffusion LS';
    this.item.command = command;
    this.render();
    this.item.show();
  }

  /** The server's last answer to `diffusion/status`, if any. */
  get current(): ServerStatus | undefined {
    return this.status;
  }

  /** Shows the spinner until `work` settles, then refreshes the server's numbers. */
  async track<T>(work: Thenable<T> | T): Promise<T> {
    this.inFlight++;
    this.progress ??= {};
    this.render();
    try {
      return await work;
    } finally {
      if (--this.inFlight === 0) this.progress = undefined;
      void this.refresh();
    }
  }

  onCanvas(canvas: CanvasParams): void {
    if (this.inFlight === 0) return;
    this.progress = { step: canvas.step, nfe: canvas.nfe };
    this.render();
  }

  /** Asks the server again; the status it answered (or the last one known). */
  async refresh(): Promise<ServerStatus | undefined> {
    try {
      const timeout = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 10_000));
      this.status = (await Promise.race([this.fetchStatus(), timeout])) ?? this.status;
    } catch {
      // The server is starting or gone; the output channel says why.
    }
    this.render();
    clearTimeout(this.poll);
    const after = pollAfterMs(this.status);
    if (after !== undefined) this.poll = setTimeout(() => void this.refresh(), after);
    return this.status;
  }

  /** Forgets the server's numbers (it stopped, or a new one starts); `problem`: why there is no server. */
  reset(problem?: string): void {
    clearTimeout(this.poll);
    this.status = undefined;
    this.problem = problem;
    this.render();
  }

  private render(): void {
    const document = vscode.window.activeTextEditor?.document;
    const asYouType = completesAsYouType(document);
    const problem = this.status ? undefined : this.problem;
    this.item.text = problem ? '$(error) diffusion' : statusText(this.status, this.progress, asYouType, document?.languageId);
    this.item.tooltip = problem
      ? `diffusion-ls: ${problem}\nClick to open the output channel.`
      : statusTooltip(this.status, this.progress, document?.languageId, asYouType);
    const error = problem ?? this.status?.error;
    this.item.backgroundColor = error ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
  }

  dispose(): void {
    clearTimeout(this.poll);
    this.onEditor.dispose();
    this.onSettings.dispose();
    this.item.dispose();
  }
}
