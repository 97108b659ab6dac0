import * as fs from 'node:fs';
import * as os from 'node:os';
import * as vscode from 'vscode';
import { LanguageClient } from 'vscode-languageclient/node';
import { locateServer, missingMessage, SearchInput } from './locate';
import { Executable, Getter } from './settings';

/** A server that runs, or why none does (undefined: stopped on purpose, or starting). */
export type ServerState = { client: LanguageClient } | { client?: undefined; problem?: string };

/**
 * The server process and its language client, through every state: never started, not found, failed to start,
 * running, stopped. Start, restart and stop run one after another; restart works from any state, since a
 * languageclient that failed to start cannot be stopped (it throws) and cannot be started again: it is dropped, its
 * process ended, and a new client made.
 */
export class Server implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private queue: Promise<void> = Promise.resolve();
  private readonly changed = new vscode.EventEmitter<ServerState>();
  readonly onDidChange = this.changed.event;

  constructor(
    private readonly setting: Getter,
    private readonly output: vscode.LogOutputChannel,
    private readonly create: (executable: Pick<Executable, 'command' | 'args'>) => LanguageClient,
  ) {}

  /** The client while it runs. */
  get running(): LanguageClient | undefined {
    return this.client?.isRunning() ? this.client : undefined;
  }

  start(): Promise<void> {
    return this.serially(() => this.startNow());
  }

  restart(): Promise<void> {
    return this.serially(async () => {
      await this.stopNow();
      await this.startNow();
    });
  }

  stop(): Promise<void> {
    return this.serially(() => this.stopNow());
  }

  dispose(): void {
    void this.stop();
    this.changed.dispose();
  }

  private serially(work: () => Promise<void>): Promise<void> {
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async startNow(): Promise<void> {
    const location = locateServer(this.setting, searchInput(), isExecutable);
    if (!location.found) {
      const message = missingMessage(location);
      const searched = location.searched.map((place) => `\n  ${place.path} (${place.where})`).join('');
      this.output.error(`${message}\nLooked at:${searched || ' nothing (no PATH)'}`);
      this.changed.fire({ problem: 'the server was not found' });
      const setting = `diffusionLs.${location.setting}`;
      void vscode.window.showErrorMessage(message, 'Open Setting', 'Show Output').then((choice) => {
        if (choice === 'Open Setting') void vscode.commands.executeCommand('workbench.action.openSettings', setting);
        else if (choice === 'Show Output') this.output.show(true);
      });
      return;
    }
    this.output.info(`starting ${location.command} ${location.args.join(' ')} (found in ${location.where})`);
    const client = this.create(location);
    this.client = client;
    try {
      await client.start();
      this.changed.fire({ client });
    } catch (error) {
      // languageclient has shown the error itself, with a button to this output channel.
      this.output.error(`the server did not start: ${String(error)}`);
      this.changed.fire({ problem: 'the server did not start' });
    }
  }

  private async stopNow(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.changed.fire({});
    if (!client) return;
    try {
      await client.dispose();
    } catch (error) {
      // A client that failed to start says it "can't be stopped"; its process is ended all the same.
      this.output.debug(`stopping the old client: ${String(error)}`);
    }
  }
}

function searchInput(): SearchInput {
  return {
    platform: process.platform,
    home: os.homedir(),
    env: process.env,
    workspaceFolders: (vscode.workspace.workspaceFolders ?? [])
      .filter((folder) => folder.uri.scheme === 'file')
      .map((folder) => folder.uri.fsPath),
    interpreter: pythonInterpreter(),
  };
}

interface PythonApi {
  environments?: { getActiveEnvironmentPath?: (resource?: vscode.Uri) => { path?: unknown } | undefined };
}

/** The Python extension's selected interpreter, if that extension is already active (it is not activated for this). */
function pythonInterpreter(): string | undefined {
  const extension = vscode.extensions.getExtension<PythonApi>('ms-python.python');
  if (!extension?.isActive) return undefined;
  try {
    const found = extension.exports?.environments?.getActiveEnvironmentPath?.(vscode.workspace.workspaceFolders?.[0]?.uri);
    return typeof found?.path === 'string' && found.path !== '' ? found.path : undefined;
  } catch {
    return undefined;
  }
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, process.platform === 'win32' ? fs.constants.F_OK : fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}
