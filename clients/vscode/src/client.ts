import * as vscode from 'vscode';
import { LanguageClient, TransportKind } from 'vscode-languageclient/node';
import { CompletionPreview } from './preview';
import { debounceMs, documentSelector, Executable, Getter, serverSettings } from './settings';
import { StatusBar } from './statusBar';
import { TraceChannel } from './trace';

/** Sections a server may pull with workspace/configuration; both are answered with the server settings. */
const SECTIONS = new Set(['diffusion', 'diffusionLs']);

/**
 * The language client for `diffusion-ls serve`. Inline completion is languageclient's own feature; the middleware
 * only waits `debounceMs` after a keystroke, spins the status bar and ends the streamed preview with the request.
 */
export function createClient(
  { command, args }: Pick<Executable, 'command' | 'args'>,
  setting: Getter,
  output: vscode.LogOutputChannel,
  trace: TraceChannel,
  preview: CompletionPreview,
  status: StatusBar,
): LanguageClient {
  return new LanguageClient(
    'diffusionLs',
    'Diffusion LS',
    { command, args, transport: TransportKind.stdio },
    {
      documentSelector: documentSelector(),
      outputChannel: output,
      traceOutputChannel: trace, // the traffic, while diffusionLs.trace.server is on (trace.ts)
      initializationOptions: () => serverSettings(setting),
      middleware: {
        provideInlineCompletionItems: async (document, position, context, token, next) => {
          const automatic = context.triggerKind === vscode.InlineCompletionTriggerKind.Automatic;
          if (automatic && !(await settle(debounceMs(setting), token))) return undefined;
          return status.track(preview.around(() => next(document, position, context, token)));
        },
        workspace: {
          configuration: (params, token, next) =>
            params.items.some((item) => item.section && SECTIONS.has(item.section))
              ? params.items.map((item) => (item.section && SECTIONS.has(item.section) ? serverSettings(setting) : null))
              : next(params, token),
        },
      },
    },
  );
}

/** Resolves true after `ms`, or false as soon as the request is cancelled (the user typed on). */
function settle(ms: number, token: vscode.CancellationToken): Promise<boolean> {
  if (token.isCancellationRequested) return Promise.resolve(false);
  if (ms <= 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      subscription.dispose();
      resolve(true);
    }, ms);
    const subscription = token.onCancellationRequested(() => {
      clearTimeout(timer);
      subscription.dispose();
      resolve(false);
    });
  });
}
