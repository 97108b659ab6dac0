import * as vscode from 'vscode';
import { CloseAction, ErrorAction, ErrorHandler, LanguageClient, State, TransportKind } from 'vscode-languageclient/node';
import { refusedCompletionNote, REWRITE_COMMAND, RewriteTarget, rewriteTarget } from './outcome';
import { CompletionPreview } from './preview';
import { RefusalNote } from './refusalNote';
import { debounceMs, documentSelector, Executable, Getter, serverSettings } from './settings';
import { completesAsYouType, StatusBar } from './statusBar';
import { TraceChannel } from './trace';

/** How long the status bar says why a completion asked for was refused. */
const REFUSED_NOTE_MS = 6000;

/** Sections a server may pull with workspace/configuration; both are answered with the server settings. */
const SECTIONS = new Set(['diffusion', 'diffusionLs']);

/**
 * The language client for `diffusion-ls serve`. Inline completion is languageclient's own feature; the middleware
 * only waits `debounceMs` after a keystroke, spins the status bar and ends the streamed preview with the request; a
 * code action's rewrite goes through the rewrite preview.
 */
export function createClient(
  { command, args }: Pick<Executable, 'command' | 'args'>,
  setting: Getter,
  output: vscode.LogOutputChannel,
  trace: TraceChannel,
  preview: CompletionPreview,
  status: StatusBar,
  rewrite: (target: RewriteTarget) => Promise<void>,
  lineNote: RefusalNote,
): LanguageClient {
  let ran = false; // whether this client's server ever ran: a crash of one that did is restarted
  let note: vscode.Disposable | undefined; // the status bar's word on a refused completion, until the next request
  let fallback: ErrorHandler | undefined;
  const client = new LanguageClient(
    'diffusionLs',
    'Diffusion LS',
    { command, args, transport: TransportKind.stdio },
    {
      documentSelector: documentSelector(),
      outputChannel: output,
      traceOutputChannel: trace, // the traffic, while diffusionLs.trace.server is on (trace.ts)
      initializationFailedHandler: () => false, // no retry, and no second error message for the same failure
      // A server that exits before it ever ran (a broken install) is not restarted four more times, and its broken
      // pipe is no error of its own: languageclient's one "couldn't create connection" error says it, and Restart
      // Server tries again. Once it has run, languageclient's defaults.
      errorHandler: {
        error: (error, message, count) =>
          ran ? fallback!.error(error, message, count) : { action: ErrorAction.Continue, handled: true },
        closed: () => (ran ? fallback!.closed() : { action: CloseAction.DoNotRestart, handled: true }),
      },
      initializationOptions: () => serverSettings(setting),
      middleware: {
        provideInlineCompletionItems: async (document, position, context, token, next) => {
          const automatic = context.triggerKind === vscode.InlineCompletionTriggerKind.Automatic;
          if (automatic && !completesAsYouType(document)) return undefined; // turned off: only asked-for ones
          if (automatic && !(await settle(debounceMs(setting), token))) return undefined;
          note?.dispose(); // about an earlier request: it would stand beside this one's suggestion
          lineNote.clear();
          const result = await status.track(preview.around(() => next(document, position, context, token), automatic));
          // asked for and refused: VS Code would show nothing at all; the status bar says why for a while
          const asked = !automatic && !token.isCancellationRequested;
          const why = asked ? refusedCompletionNote(result, preview.refusal) : undefined;
          const editor = vscode.window.activeTextEditor;
          if (why) {
            note = vscode.window.setStatusBarMessage(`$(circle-slash) diffusion-ls: ${why}`, REFUSED_NOTE_MS);
            if (editor?.document === document) lineNote.show(editor, position.line, why);
          }
          return result;
        },
        // The lightbulb's rewrite runs the server's command, which would apply the edit at once: it goes through the
        // preview instead, and changes the document only on accept, as Rewrite Selection does.
        executeCommand: (command, args, next) => {
          const target = command === REWRITE_COMMAND ? rewriteTarget(args) : undefined;
          return target ? rewrite(target) : next(command, args);
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
  fallback = client.createDefaultErrorHandler();
  client.onDidChangeState((e) => (ran ||= e.newState === State.Running));
  return client;
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
