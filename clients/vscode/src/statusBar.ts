import * as vscode from 'vscode';
import { CanvasParams } from './canvas';
import { pollAfterMs, Progress, ServerStatus, statusText, statusTooltip } from './statusText';

/** The status bar item: backend and model, last latency and tokens per forward, a spinner while denoising. */
export class StatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
  private status: ServerStatus | undefined;
  private problem: string | undefined;
  private progress: Progress | undefined;
  private inFlight = 0;
  private poll: ReturnType<typeof setTimeout> | undefined;

  private readonly onEditor = vscode.window.onDidChangeActiveTextEditor(() => this.render());

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
    const languageId = vscode.window.activeTextEditor?.document.languageId;
    const problem = this.status ? undefined : this.problem;
    this.item.text = problem ? '$(error) diffusion' : statusText(this.status, this.progress);
    this.item.tooltip = problem
      ? `diffusion-ls: ${problem}\nClick to open the output channel.`
      : statusTooltip(this.status, this.progress, languageId);
    const error = problem ?? this.status?.error;
    this.item.backgroundColor = error ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
  }

  dispose(): void {
    clearTimeout(this.poll);
    this.onEditor.dispose();
    this.item.dispose();
  }
}
