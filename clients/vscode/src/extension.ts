import * as vscode from 'vscode';
import { DidChangeConfigurationNotification, LanguageClient } from 'vscode-languageclient/node';
import { CanvasParams, routeCanvas } from './canvas';
import { createClient } from './client';
import { CompletionPreview } from './preview';
import { RewriteController } from './rewrite';
import { documentSelector, RESTART_KEYS, serverSettings } from './settings';
import { StatusBar } from './statusBar';
import { ServerStatus } from './statusText';

let client: LanguageClient | undefined;

const setting = (key: string): unknown => vscode.workspace.getConfiguration('diffusionLs').get(key);

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const output = vscode.window.createOutputChannel('Diffusion LS', { log: true });
  const status = new StatusBar('diffusionLs.showOutput', async () =>
    client?.isRunning() ? client.sendRequest<ServerStatus>('diffusion/status', {}) : undefined,
  );
  const preview = new CompletionPreview(() => setting('preview.enabled') !== false);
  const rewrite = new RewriteController(() => client, (work) => status.track(work));
  context.subscriptions.push(output, status, preview, rewrite);

  const onCanvas = (canvas: CanvasParams): void => {
    status.onCanvas(canvas);
    const target = routeCanvas(canvas, rewrite.pending);
    if (target === 'rewrite') rewrite.onCanvas(canvas);
    else if (target === 'completion') preview.onCanvas(canvas);
  };

  const start = async (): Promise<void> => {
    client = createClient(setting, output, preview, status);
    client.onNotification('diffusion/canvas', onCanvas);
    try {
      await client.start();
    } catch (error) {
      output.error(`the server did not start: ${String(error)}`);
      void vscode.window.showErrorMessage('Diffusion LS: the server did not start. See the output.', 'Show Output')
        .then((choice) => choice && output.show());
    }
    void status.refresh();
  };

  const restart = async (): Promise<void> => {
    rewrite.reject();
    preview.clear();
    await client?.dispose();
    await start();
  };

  context.subscriptions.push(
    vscode.commands.registerCommand('diffusionLs.rewriteSelection', () => rewrite.rewriteSelection()),
    vscode.commands.registerCommand('diffusionLs.acceptRewrite', () => rewrite.accept()),
    vscode.commands.registerCommand('diffusionLs.rejectRewrite', () => rewrite.reject()),
    vscode.commands.registerCommand('diffusionLs.showOutput', () => output.show(true)),
    vscode.commands.registerCommand('diffusionLs.restartServer', restart),
    vscode.languages.registerCodeLensProvider(documentSelector(), rewrite),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (RESTART_KEYS.some((key) => e.affectsConfiguration(`diffusionLs.${key}`))) void restart();
      else if (e.affectsConfiguration('diffusionLs') && client?.isRunning()) {
        void client.sendNotification(DidChangeConfigurationNotification.type, { settings: serverSettings(setting) });
      }
    }),
    { dispose: () => void client?.dispose() },
  );
  await start();
}

export async function deactivate(): Promise<void> {
  await client?.dispose();
  client = undefined;
}
