import * as vscode from 'vscode';
import { DidChangeConfigurationNotification } from 'vscode-languageclient/node';
import { CanvasParams, routeCanvas } from './canvas';
import { createClient } from './client';
import { CompletionPreview } from './preview';
import { RefusalNote } from './refusalNote';
import { RewriteController } from './rewrite';
import { Server } from './server';
import { documentSelector, RESTART_KEYS, serverSettings } from './settings';
import { StatusBar, toggleAsYouType } from './statusBar';
import { ServerStatus } from './statusText';
import { TraceChannel } from './trace';

let server: Server | undefined;

const setting = (key: string): unknown => vscode.workspace.getConfiguration('diffusionLs').get(key);

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const output = vscode.window.createOutputChannel('Diffusion LS', { log: true });
  const trace = new TraceChannel(output, () => setting('trace.server'));
  const fetchStatus = async () => server?.running?.sendRequest<ServerStatus>('diffusion/status', {});
  const status = new StatusBar('diffusionLs.showOutput', fetchStatus);
  // as you type, a canvas the server then refuses (about one in five, in a user trial) flashes and vanishes: by
  // default only asked-for completions stream
  const preview = new CompletionPreview(
    (automatic) => setting('preview.enabled') !== false && (!automatic || setting('preview.asYouType') === true),
  );
  const rewrite = new RewriteController(() => server?.running, (work) => status.track(work), () => status.refresh());
  const lineNote = new RefusalNote();
  context.subscriptions.push(output, trace, status, preview, rewrite, lineNote);

  const onCanvas = (canvas: CanvasParams): void => {
    status.onCanvas(canvas);
    const target = routeCanvas(canvas, rewrite.pending);
    if (target === 'edit') rewrite.onCanvas(canvas);
    else if (target === 'completion') preview.onCanvas(canvas);
  };

  server = new Server(setting, output, (executable) => {
    const client = createClient(executable, setting, output, trace, preview, status, (target) =>
      rewrite.rewriteSelection(target), lineNote,
    );
    client.onNotification('diffusion/canvas', onCanvas);
    return client;
  });
  context.subscriptions.push(
    server,
    server.onDidChange((state) => {
      rewrite.reject(); // a rewrite or fill in flight belonged to the old server
      preview.reset(); // the new server's request ids start again
      status.reset(state.client ? undefined : state.problem);
      if (state.client) void status.refresh();
    }),
  );

  context.subscriptions.push(
    vscode.commands.registerCommand('diffusionLs.rewriteSelection', () => rewrite.rewriteSelection()),
    vscode.commands.registerCommand('diffusionLs.fillPlaceholders', () => rewrite.fillPlaceholders()),
    vscode.commands.registerCommand('diffusionLs.toggleCompletions', () => toggleAsYouType()),
    vscode.commands.registerCommand('diffusionLs.acceptRewrite', () => rewrite.accept()),
    vscode.commands.registerCommand('diffusionLs.rejectRewrite', () => rewrite.reject()),
    vscode.commands.registerCommand('diffusionLs.showOutput', () => output.show(true)),
    vscode.commands.registerCommand('diffusionLs.restartServer', () => server?.restart()),
    vscode.languages.registerCodeLensProvider(documentSelector(), rewrite),
    vscode.workspace.onDidChangeConfiguration((e) => {
      const running = server?.running;
      if (RESTART_KEYS.some((key) => e.affectsConfiguration(`diffusionLs.${key}`))) void server?.restart();
      else if (e.affectsConfiguration('diffusionLs') && running) {
        // the tooltip shows settings the server reports (the repository context's budget): ask again once it has them
        void running
          .sendNotification(DidChangeConfigurationNotification.type, { settings: serverSettings(setting) })
          .then(() => status.refresh());
      }
    }),
  );
  await server.start();
}

export async function deactivate(): Promise<void> {
  await server?.stop();
  server = undefined;
}
