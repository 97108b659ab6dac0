import * as vscode from 'vscode';
import { CanvasParams } from './canvas';
import { Progress, ServerStatus, statusText, statusTooltip } from './statusText';

/** The status bar item: backend and model, last latency and tokens per forward, a spinner while denoising. */
export class StatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
  private status: ServerStatus | undefined;
  private progress: Progress | undefined;
  private inFlight = 0;
  private poll: ReturnType<typeof setTimeout> | undefined;

  constructor(
    command: string,
    private readonly fetchStatus: () => Promise<ServerStatus | undefined>,
  ) {
    this.item.name = 'Diffusion LS';
    this.item.command = command;
    this.render();
    this.item.show();
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

  async refresh(): Promise<void> {
    try {
      const timeout = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 10_000));
      this.status = (await Promise.race([this.fetchStatus(), timeout])) ?? this.status;
    } catch {
      // The server is starting or gone; the output channel says why.
    }
    this.render();
    clearTimeout(this.poll);
    if (this.status?.loading) this.poll = setTimeout(() => void this.refresh(), 1000); // until the model is loaded
  }

  private render(): void {
    this.item.text = statusText(this.status, this.progress);
    this.item.tooltip = statusTooltip(this.status, this.progress);
    this.item.backgroundColor = this.status?.error ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
  }

  dispose(): void {
    clearTimeout(this.poll);
    this.item.dispose();
  }
}
