import * as vscode from 'vscode';
import { tracing } from './settings';

/**
 * The channel vscode-languageclient writes the LSP traffic to. The library traces only while that channel's log level
 * is Trace and reads `diffusionLs.trace.server` (`<client id>.trace.server`) just for how much; so with the output
 * channel at its default level the setting alone printed nothing. This channel reports level Trace while the setting
 * is on and writes the traffic into the output channel at a level it shows; with the setting off it is the output
 * channel as the user set it (its own level Trace still traces, as in other languageclient extensions).
 */
export class TraceChannel implements vscode.LogOutputChannel {
  private readonly changed = new vscode.EventEmitter<vscode.LogLevel>();
  readonly onDidChangeLogLevel = this.changed.event;
  private readonly subscriptions: vscode.Disposable[];

  constructor(
    private readonly output: vscode.LogOutputChannel,
    private readonly setting: () => unknown,
  ) {
    this.subscriptions = [
      this.changed,
      output.onDidChangeLogLevel(() => this.changed.fire(this.logLevel)),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration('diffusionLs.trace.server')) this.changed.fire(this.logLevel);
      }),
    ];
  }

  get logLevel(): vscode.LogLevel {
    return tracing(this.setting()) ? vscode.LogLevel.Trace : this.output.logLevel;
  }

  get name(): string {
    return this.output.name;
  }

  trace(message: string, ...args: unknown[]): void {
    if (tracing(this.setting())) this.output.info(message, ...args);
    else this.output.trace(message, ...args);
  }

  debug(message: string, ...args: unknown[]): void {
    this.output.debug(message, ...args);
  }

  info(message: string, ...args: unknown[]): void {
    this.output.info(message, ...args);
  }

  warn(message: string, ...args: unknown[]): void {
    this.output.warn(message, ...args);
  }

  error(error: string | Error, ...args: unknown[]): void {
    this.output.error(error, ...args);
  }

  append(value: string): void {
    this.output.append(value);
  }

  appendLine(value: string): void {
    this.output.appendLine(value);
  }

  replace(value: string): void {
    this.output.replace(value);
  }

  clear(): void {
    this.output.clear();
  }

  show(columnOrPreserveFocus?: vscode.ViewColumn | boolean, preserveFocus?: boolean): void {
    if (typeof columnOrPreserveFocus === 'boolean') this.output.show(columnOrPreserveFocus);
    else this.output.show(columnOrPreserveFocus, preserveFocus);
  }

  hide(): void {
    this.output.hide();
  }

  /** Leaves the output channel open: it is not this channel's. */
  dispose(): void {
    for (const s of this.subscriptions) s.dispose();
  }
}
