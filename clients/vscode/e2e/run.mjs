#!/usr/bin/env node
// End-to-end test of the packaged extension in a real VS Code: code-server in headless Chromium (playwright-core),
// talking to the real diffusion-ls server and the shipped model.
//
//   1. installs the .vsix into a fresh extensions dir; code-server runs with no way to the server (PATH without it,
//      no virtual environment, an empty home): one error toast, whose button opens diffusionLs.server.command;
//   2. a broken server in the workspace's .venv: Restart Server (never started) fails; the real one put there:
//      Restart Server (start failed) finds and starts it;
//   3. types in a Python file and asks with Alt+\ (the extension's key), sees the streamed preview (masked slots,
//      drawn fainter than the decided text beside them), then VS Code's ghost text; typed into, it stands, and asked
//      for there the canvas streams again; Tab inserts it; the LSP traffic
//      is in the output channel
//      (diffusionLs.trace.server);
//   4. Restart Server while it runs, then the same completion again: the preview streams for the new server too;
//   5. the same selection rewritten from the refactor menu (the server's code action "Diffusion: refine selection"):
//      the same preview (struck through, Accept CodeLens), nothing applied; rejected, the document and file unchanged;
//   6. rewrites a four-line selection: no instruction asked (the model ignores them), the CodeLens counts forwards,
//      the preview is drawn as rows beside the old text (struck through) within the editor, the document unchanged
//      until the CodeLens accepts the previewed text;
//   7. a rewrite the server refuses (edit null): the reason in a warning, no Accept CodeLens, no preview, the buffer
//      untouched; a completion asked for and refused: the reason dimmed at the end of its line until the cursor moves;
//      the status bar tooltip rates the model on Python, and names the file the index skipped;
//   8. Fill Placeholders in another file (counter.py): each fill drawn beside its placeholder (struck through), a report of what was
//      filled and kept, the document unchanged until an Accept CodeLens applies exactly the previewed fills, one undo
//      taking them all back;
//   9. Toggle Completions As You Type: off, the status bar says so and typing sends no completion request; on again,
//      typing gets a ghost text.
// The server holds each intermediate canvas 200 ms (diffusionLs.canvasDelayMs), so that every canvas is drawn and a
// rewrite streams long enough for the CodeLens to show its count: without it a fill of a few ~15 ms forwards is over
// before VS Code draws anything but its end. Every frame of the preview is recorded (watchPreview).
// Screenshots go to $DIFFUSION_LS_E2E_ARTIFACTS (default: <repo>/build/e2e). Every process it starts is stopped.
//
// Environment: CODE_SERVER (required), NODE24_BIN (prepended to PATH for code-server), CHROMIUM (/usr/bin/chromium),
// VSIX (out/diffusion-ls.vsix), DIFFUSION_LS_COMMAND (the server linked into the workspace's .venv; default:
// <repo>/.venv/bin/diffusion-ls, else a script running the venv's python with `-m server.cli`),
// DIFFUSION_LS_E2E_SETTINGS (JSON merged into the user settings), DIFFUSION_LS_E2E_KEEP=1 (keep the temporary
// folder: logs, user data).

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const extensionDir = resolve(here, '..');
const repo = resolve(extensionDir, '../..');
const codeServer = required('CODE_SERVER');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const vsix = resolve(process.env.VSIX || join(extensionDir, 'out/diffusion-ls.vsix'));
const artifacts = resolve(process.env.DIFFUSION_LS_E2E_ARTIFACTS || join(repo, 'build/e2e'));
const PATH = process.env.NODE24_BIN ? `${process.env.NODE24_BIN}:${process.env.PATH}` : process.env.PATH;
const TIMEOUT = 120_000; // the first request loads the model; the CPU may be shared

// The shipped model is a small one: code it writes rarely survives the syntax-boundary truncation, words in a comment
// do. So the completion happens in a comment.
const ORIGINAL = [
  'import numpy as np',
  '',
  '',
  'def add(a, b):',
  '    return a + b',
  '',
  '',
  'def mean(values):',
  '    """Add up the values,',
  '    then divide by how many there are."""',
  '    total = sum(values)',
  '    count = len(values)',
  '    return total / count',
  '',
  '',
  'def square(x):',
  '    # the square of ',
].join('\n');
// The rewrite (refine mode) selects the body below the docstring, lines 11 to 13, from the indentation to the end. The
// shipped model answers it with an edit the guard lets through (its answers to other bodies tried were refused).
const REWRITE_LINE = 11; // 1-based
const REWRITE_LINES = 3;
const REWRITE_FIRST = 'total = sum(values)';
const REWRITE_LAST = 'return total / count';
const REFUSED_LINE = 8; // its last character, the colon of `def mean(values):`, is rewritten and refused
const REFUSED_COMPLETION_LINE = 5; // `    return a + b`: a completion asked for after `return` is refused
// Fill Placeholders: with the shipped model (and these settings) one placeholder is filled, the other kept by the guard
const FILL = ['class Counter:', '    def __init__(self):', '        ...', '', '    def inc(self):', '        pass', ''].join('\n');

const started = Date.now();
const timings = {};
const tmp = mkdtempSync(join(tmpdir(), 'diffusion-ls-vscode-e2e-'));
let serverProcess;
let browser;
const consoleLines = []; // the workbench's console, shown when the test fails

try {
  await main();
  console.log(`e2e: PASS in ${seconds(started)} s ${JSON.stringify(timings)}`);
} catch (error) {
  console.error(`e2e: FAIL after ${seconds(started)} s: ${error?.stack ?? error}`);
  process.exitCode = 1;
  await browser?.pages()[0]?.screenshot({ path: join(artifacts, 'vscode-failure.png') }).catch(() => {});
  dumpLogs();
} finally {
  await browser?.close().catch(() => {});
  stopTree(serverProcess);
  if (!process.env.DIFFUSION_LS_E2E_KEEP) rmSync(tmp, { recursive: true, force: true });
}

async function main() {
  if (!existsSync(vsix)) throw new Error(`no ${vsix}: run \`npm run package\` first`);
  mkdirSync(artifacts, { recursive: true });
  rmSync(join(artifacts, 'vscode-failure.png'), { force: true });
  const userData = join(tmp, 'user-data');
  const extensions = join(tmp, 'extensions');
  const workspace = join(tmp, 'workspace');
  const home = join(tmp, 'home'); // an empty home: no ~/.local/bin, no pipx
  mkdirSync(join(userData, 'User'), { recursive: true });
  mkdirSync(workspace, { recursive: true });
  mkdirSync(home, { recursive: true });
  const file = join(workspace, 'main.py');
  writeFileSync(file, ORIGINAL);
  const fillFile = join(workspace, 'counter.py');
  writeFileSync(fillFile, FILL);
  writeFileSync(join(workspace, 'blob.py'), Buffer.from('def f():\n\u0000\u0001\n')); // the index skips it: binary
  const serverLog = join(tmp, 'server.log');

  let t = Date.now();
  const csArgs = ['--user-data-dir', userData, '--extensions-dir', extensions, '--config', join(tmp, 'config.yaml')];
  const install = spawnSync(codeServer, [...csArgs, '--install-extension', vsix], { env: { ...process.env, PATH }, encoding: 'utf8' });
  if (install.status !== 0 || !/successfully installed/i.test(install.stdout + install.stderr)) {
    throw new Error(`installing the vsix failed:\n${install.stdout}\n${install.stderr}`);
  }
  timings.installVsix = seconds(t);

  // No diffusionLs.server.command: the extension has to find the server, and at first there is none to find.
  writeFileSync(join(userData, 'User/settings.json'), JSON.stringify(userSettings(serverLog), null, 2));

  t = Date.now();
  const port = await freePort();
  serverProcess = spawn(
    codeServer,
    [...csArgs, '--bind-addr', `127.0.0.1:${port}`, '--auth', 'none', '--disable-telemetry', '--disable-update-check',
      '--disable-workspace-trust', '--disable-getting-started-override', workspace],
    { env: withoutServer(home), detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let csOutput = '';
  serverProcess.stdout.on('data', (d) => (csOutput += d));
  serverProcess.stderr.on('data', (d) => (csOutput += d));
  await waitForHttp(`http://127.0.0.1:${port}/`, 60_000, () => csOutput);
  timings.codeServerUp = seconds(t);

  t = Date.now();
  browser = await chromium.launchPersistentContext(join(tmp, 'chromium'), {
    executablePath: chromiumPath,
    headless: true,
    viewport: { width: 1280, height: 720 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = browser.pages()[0] ?? (await browser.newPage());
  page.setDefaultTimeout(TIMEOUT);
  page.on('console', (message) => consoleLines.push(`[${message.type()}] ${message.text()}`));
  // No preview drawn: no after-text but a refused completion's note (its reason stays until the cursor moves).
  await page.addInitScript(() => {
    window.__noPreview = () =>
      [...document.querySelectorAll('.monaco-editor .view-lines span[class*="ced-"]')].every((e) => {
        const content = getComputedStyle(e, '::after').content;
        return !content || content === 'none' || content === 'normal' || content.includes('no suggestion: ');
      });
  });
  await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}`);
  await page.locator('.monaco-workbench').waitFor();
  await openFile(page, 'main.py');
  timings.workbenchReady = seconds(t);

  // -- no server anywhere: one error, whose button opens the setting -------------------------------------------------
  t = Date.now();
  const notFound = page.locator('.notification-toast', { hasText: 'server was not found' });
  await notFound.waitFor();
  await page.locator('.statusbar-item:has(.codicon-error)', { hasText: 'diffusion' }).waitFor();
  const toasts = await page.locator('.notification-toast .notification-list-item-message').allTextContents();
  await page.screenshot({ path: join(artifacts, 'vscode-not-found.png') });
  console.log(`e2e: toasts: ${JSON.stringify(toasts)}`);
  assert(toasts.filter((text) => /diffusion|ENOENT/i.test(text)).length === 1, 'one error toast, no ENOENT');
  const toast = toasts.find((text) => text.includes('server was not found'));
  assert(toast.includes('pipx install') && toast.includes('diffusionLs.server.command'), 'it says how to install, and the setting');
  await notFound.locator('.monaco-button', { hasText: 'Open Setting' }).click();
  const settingRow = page.locator('.settings-editor .setting-item-contents', { hasText: 'is searched for' }).first();
  await settingRow.waitFor();
  await page.screenshot({ path: join(artifacts, 'vscode-open-setting.png') });
  assert(/Server:\s*Command/.test(await settingRow.textContent()), 'the button opens the diffusionLs.server.command setting');
  const modal = page.locator('.monaco-modal-editor-block'); // the settings editor opens as a modal here
  if (await modal.count()) {
    await modal.locator('.codicon-close').first().click();
    await modal.waitFor({ state: 'detached' });
  }
  await page.locator('.monaco-editor[data-uri$="main.py"] .view-lines').first().click();
  timings.notFound = seconds(t);

  // -- a broken server, found in the workspace's .venv, then the real one: Restart Server from both states -----------
  t = Date.now();
  const venvServer = join(workspace, '.venv/bin/diffusion-ls');
  mkdirSync(dirname(venvServer), { recursive: true });
  writeFileSync(venvServer, '#!/bin/sh\necho "this diffusion-ls is broken" >&2\nexit 3\n', { mode: 0o755 });
  await runCommand(page, 'Notifications: Clear All Notifications');
  await runCommand(page, 'Diffusion: Restart Server'); // from "never started"
  await waitForLog(userData, /the server did not start/);
  await page.locator('.statusbar-item:has(.codicon-error)', { hasText: 'diffusion' }).waitFor();
  await page.locator('.notification-toast', { hasText: "couldn't create connection to server" }).waitFor();
  const failed = await page.locator('.notification-toast .notification-list-item-message').allTextContents();
  console.log(`e2e: toasts: ${JSON.stringify(failed)}`);
  assert(failed.length === 1, 'a server that fails to start gives one error toast');
  rmSync(venvServer);
  installServer(venvServer);
  await runCommand(page, 'Notifications: Clear All Notifications');
  await runCommand(page, 'Diffusion: Restart Server'); // from "start failed"
  await page.locator('.statusbar-item', { hasText: /embedded/ }).first().waitFor();
  const found = await waitForLog(userData, /\] starting (\S+) serve \(found in the workspace's \.venv\)/);
  assert(found[1] === venvServer, `the server in the workspace's .venv is started (${found[1]})`);
  timings.restartFromFailed = seconds(t);

  // -- completion: streamed preview, then ghost text, Tab inserts it ---------------------------------------------
  t = Date.now();
  const editor = page.locator('.monaco-editor[data-uri$="main.py"]').first();
  await openFile(page, 'main.py');
  await editor.locator('.view-lines').click();
  await page.keyboard.press('Control+End');
  let completed = await complete(page, file, ORIGINAL, 'x', 'vscode-preview.png', { askAgain: true });
  timings.completion = seconds(t);
  await waitForLog(userData, /Sending request 'diffusion\/status/);
  console.log('e2e: ok - diffusionLs.trace.server puts the LSP traffic in the output channel');

  // -- Restart Server while it runs: the preview streams again for the new server's requests ---------------------
  t = Date.now();
  await runCommand(page, 'Diffusion: Restart Server');
  // The new server has the document once it is told about it (the trace shows it): the third start's didOpen.
  const startLine = /\] starting \S+ serve \(found in/.source;
  await waitForLog(userData, new RegExp(`${startLine}[^]*${startLine}[^]*${startLine}[^]*Sending notification 'textDocument/didOpen'`));
  await page.locator('.statusbar-item', { hasText: /embedded/ }).first().waitFor();
  await editor.locator('.view-lines').click();
  await page.keyboard.press('Control+End');
  completed = await complete(page, file, completed, 'y', 'vscode-preview-after-restart.png', { accept: false });
  timings.restartRunning = seconds(t);

  // -- the refactor menu's rewrite (the server's code action): the same preview, nothing applied; rejected ----------
  // The code action's command is the server's diffusion.rewrite, which would apply the edit at once (workspace/applyEdit):
  // the extension runs it through the preview instead, as Rewrite Selection does.
  t = Date.now();
  const lines = completed.split('\n');
  const start = completed.indexOf(REWRITE_FIRST);
  const end = completed.indexOf(REWRITE_LAST) + REWRITE_LAST.length;
  assert(start > 0 && lines[REWRITE_LINE - 1].trim() === REWRITE_FIRST, 'the selection to rewrite is in the file');
  const refine = await refactorAction(page, 'Diffusion: refine selection', () => selectRewrite(page));
  await page.screenshot({ path: join(artifacts, 'vscode-codeaction-menu.png') });
  await refine.click();
  // The Accept CodeLens once the preview is complete, or the edit applied at once (the tab dirty): whichever comes first.
  const outcome = await page.waitForFunction(
    () =>
      (document.querySelector('.tab.active.dirty') && 'applied') ||
      ([...document.querySelectorAll('.codelens-decoration')].some((e) => e.textContent.includes('Accept rewrite')) && 'previewed'),
    undefined,
    { polling: 250, timeout: TIMEOUT },
  );
  await page.screenshot({ path: join(artifacts, 'vscode-codeaction-rewrite.png') });
  const how = await outcome.jsonValue();
  console.log(`e2e: the code action's rewrite: ${how}`);
  assert(how === 'previewed', "the code action's rewrite is previewed with an Accept CodeLens, not applied at once");
  assert(await quickInputClosed(page), 'no instruction is asked for (code action)');
  const codeActionRows = await previewRows(page);
  console.log(`e2e: code action preview rows: ${JSON.stringify(codeActionRows)}`);
  assert(codeActionRows.length > 0 && codeActionRows[0].text.trim().startsWith('→'), 'the code action shows the new text as rows');
  assert(await struckThrough(page), 'the selected text is struck through while the code action\'s rewrite is pending');
  assert((await page.locator('.tab.active.dirty').count()) === 0, 'the code action changes nothing in the document before accept');
  await runCommand(page, 'Diffusion: Reject Rewrite');
  await page.locator('.codelens-decoration', { hasText: 'Accept rewrite' }).waitFor({ state: 'detached' });
  await page.waitForFunction(() => window.__noPreview());
  assert(!(await struckThrough(page)), 'rejected: the Accept CodeLens, the rows and the strike-through are gone');
  assert((await page.locator('.tab.active.dirty').count()) === 0, 'rejected: the buffer is untouched');
  assert(readFileSync(file, 'utf8') === completed, 'rejected: and the file');
  timings.codeAction = seconds(t);

  // -- rewrite a multi-line selection: progress in the CodeLens, rows beside it, nothing changes until accept --------
  t = Date.now();
  await selectRewrite(page);
  await recordLenses(page);
  await runCommand(page, 'Diffusion: Rewrite Selection');
  const accept = page.locator('.codelens-decoration a', { hasText: 'Accept rewrite' });
  // A canvas with masked slots, drawn (polled every frame), or the answer already there.
  const first = await page.waitForFunction(
    () => {
      const spans = [...document.querySelectorAll('.monaco-editor .view-lines span[class*="ced-"]')];
      if (spans.some((e) => getComputedStyle(e, '::after').content.includes('·'))) return 'masked';
      return [...document.querySelectorAll('.codelens-decoration')].some((e) => e.textContent.includes('Accept')) && 'done';
    },
    undefined,
    { polling: 'raf', timeout: TIMEOUT },
  );
  if ((await first.jsonValue()) === 'masked') await page.screenshot({ path: join(artifacts, 'vscode-rewrite-progress.png') });
  assert(await quickInputClosed(page), 'no instruction is asked for: this model ignores them');
  await accept.waitFor();
  const rows = await previewRows(page);
  await page.screenshot({ path: join(artifacts, 'vscode-rewrite.png') });
  const lenses = await page.evaluate(() => window.__lenses);
  console.log(`e2e: CodeLens texts during the rewrite: ${JSON.stringify(lenses)}`);
  assert(lenses.some((text) => /Rewriting… \([1-9]\d* fwd\)/.test(text)), 'the CodeLens counts the forwards as the canvases come');
  console.log(`e2e: rewrite preview rows: ${JSON.stringify(rows)}`);
  assert(await struckThrough(page), 'the selected text is struck through while the rewrite is pending');
  assert((await page.locator('.tab.active.dirty').count()) === 0, 'nothing changes in the document before accept');
  assert(rows.length > 0 && rows[0].text.trim().startsWith('→'), 'the new text is drawn after an arrow');
  assert(rows.every((row) => row.right <= row.editorRight), 'every row fits in the editor (nothing runs off the right edge)');
  assert(same(rows.map((row) => row.text).join('\n'), codeActionRows.map((row) => row.text).join('\n')), 'the code action previewed this same rewrite');

  await accept.click();
  await accept.waitFor({ state: 'detached' });
  const rewritten = await save(page, file);
  assert(rewritten.startsWith(completed.slice(0, start)), 'the text before the selection is unchanged');
  assert(rewritten.endsWith(completed.slice(end)), 'the text after the selection is unchanged');
  const newText = rewritten.slice(start, rewritten.length - (completed.length - end));
  console.log(`e2e: rewrite replaced ${JSON.stringify(completed.slice(start, end))} with ${JSON.stringify(newText)}`);
  const previewed = rows.map((row) => row.text.replace(/^[\s\u00a0]*[→│]\u00a0?/, '')).join('\n');
  assert(same(newText, previewed), 'the accepted text is the previewed one');
  // r4 answered this selection with several lines; r5 answers one (`return sum(sum(values) - len(values))`), and none
  // of the bodies tried gets several lines from it at these settings: the rows are checked for what it answers.
  const newLines = newText.split('\n').length;
  console.log(`e2e: the rewrite has ${newLines} line(s)`);
  assert(rows.length === newLines && new Set(rows.map((row) => row.top)).size === newLines, 'each line of the new text is a row of its own');
  timings.rewrite = seconds(t);

  // -- a rewrite the server refuses: a warning says why, nothing to accept, the preview gone, the buffer untouched -------
  t = Date.now();
  await goToLine(page, REFUSED_LINE);
  await page.keyboard.press('End');
  await page.keyboard.press('Shift+ArrowLeft'); // the colon: the model writes ':' again, or something that cannot parse
  await runCommand(page, 'Diffusion: Rewrite Selection');
  const refused = page.locator('.notification-toast', { hasText: 'diffusion-ls: rewrite refused:' });
  await refused.waitFor();
  await page.waitForFunction(() => [...document.querySelectorAll('.notification-toast')].every((e) => getComputedStyle(e).opacity === '1'));
  await page.locator('.codelens-decoration', { hasText: 'Rewriting' }).waitFor({ state: 'detached' });
  await page.waitForFunction(() => window.__noPreview());
  await page.screenshot({ path: join(artifacts, 'vscode-rewrite-refused.png') });
  console.log(`e2e: ${await refused.locator('.notification-list-item-message').textContent()}`);
  assert((await page.locator('.codelens-decoration', { hasText: 'Accept rewrite' }).count()) === 0, 'a refused rewrite has no Accept CodeLens');
  assert((await page.locator('.tab.active.dirty').count()) === 0, 'a refused rewrite leaves the buffer untouched');
  assert(readFileSync(file, 'utf8') === rewritten, 'and the file');
  timings.refused = seconds(t);

  // -- a completion asked for and refused: why, dimmed at the end of the line, until the cursor moves -----------------
  await goToLine(page, REFUSED_COMPLETION_LINE);
  await page.keyboard.press('Home'); // the first non-blank character: `return`
  for (let i = 0; i < 'return'.length; i++) await page.keyboard.press('ArrowRight');
  await page.keyboard.press('Alt+Backslash'); // the model writes on the word (`returns a + b`): it cannot parse
  const noteText = () =>
    page.evaluate(() =>
      [...document.querySelectorAll('.monaco-editor .view-lines span[class*="ced-"]')]
        .map((e) => getComputedStyle(e, '::after').content)
        .find((c) => c.includes('no suggestion: ')),
    );
  await page.waitForFunction(() =>
    [...document.querySelectorAll('.monaco-editor .view-lines span[class*="ced-"]')].some((e) =>
      getComputedStyle(e, '::after').content.includes('no suggestion: '),
    ),
  undefined, { timeout: TIMEOUT });
  await page.screenshot({ path: join(artifacts, 'vscode-completion-refused.png') });
  console.log(`e2e: refused completion, at the end of its line: ${await noteText()}`);
  assert((await page.locator('.ghost-text-decoration, .ghost-text').count()) === 0, 'a refused completion has no ghost text');
  await page.keyboard.press('ArrowRight');
  await page.waitForFunction(() =>
    [...document.querySelectorAll('.monaco-editor .view-lines span[class*="ced-"]')].every((e) =>
      !getComputedStyle(e, '::after').content.includes('no suggestion: '),
    ),
  );
  assert((await page.locator('.tab.active.dirty').count()) === 0, 'a refused completion leaves the buffer untouched');

  // -- the status bar tooltip rates the model on the current language ---------------------------------------------
  await page.locator('.statusbar-item', { hasText: /embedded/ }).first().hover();
  const tooltip = page.locator('.monaco-hover, .workbench-hover', { hasText: 'Model on python' }).first();
  await tooltip.waitFor();
  await page.screenshot({ path: join(artifacts, 'vscode-status-tooltip.png') });
  const tip = await tooltip.textContent();
  assert(/Model on python: (good|fair|weak)/.test(tip), "the tooltip rates the model on the file's language");
  // the shipped model reads repository context: the tooltip says what the index holds and names what it skipped
  assert(/Repository context: \d+ tokens, \d+ files indexed/.test(tip), `the tooltip shows the repository index (${tip})`);
  assert(tip.includes('Skipped: blob.py (binary)'), `and the file it skipped, with why (${tip})`);
  // -- fill placeholders: each fill previewed beside its placeholder, applied on accept, one undo takes it back ----------
  t = Date.now();
  await openFile(page, 'counter.py');
  await page.locator('.monaco-editor[data-uri$="counter.py"] .view-lines').first().click();
  await runCommand(page, 'Notifications: Clear All Notifications');
  await runCommand(page, 'Diffusion: Fill Placeholders');
  const report = page.locator('.notification-toast', { hasText: 'Diffusion: filled' }).first();
  await report.waitFor();
  const reported = await report.locator('.notification-list-item-message').textContent();
  console.log(`e2e: ${reported}`);
  const counted = /^Diffusion: filled (\d+)(?: of 2)? placeholders?: accept or reject/.exec(reported);
  assert(counted && Number(counted[1]) > 0, 'a placeholder is filled (else pick a fixture the model fills) and the report says to accept or reject');
  const acceptFill = page.locator('.codelens-decoration a', { hasText: /Accept (fill|all)/ }).first();
  await acceptFill.waitFor();
  const fillRows = await previewRows(page, 'counter.py');
  await page.screenshot({ path: join(artifacts, 'vscode-fill.png') });
  console.log(`e2e: fill preview rows: ${JSON.stringify(fillRows.map((row) => row.text))}`);
  assert(await struckThrough(page, /^(\.\.\.|pass)$/), 'a filled placeholder is struck through');
  if (!/of 2 placeholders/.test(reported)) console.log('e2e: nothing kept this time: no underline to look for');
  else assert(await underlined(page, /^(\.\.\.|pass)$/), 'the kept placeholder is underlined');
  assert((await page.locator('.tab.active.dirty').count()) === 0, 'nothing changes in the document before accept');
  assert(fillRows.length >= Number(counted[1]), 'each fill is drawn beside its placeholder');
  await acceptFill.click();
  await acceptFill.waitFor({ state: 'detached' });
  const filled = await save(page, fillFile);
  console.log(`e2e: filled file: ${JSON.stringify(filled)}`);
  // the file as it was, each placeholder replaced by its fill or kept: nothing else changed
  const pattern = FILL.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\\\.\\\.\\\.|pass/g, '([^]*?)');
  const fills = new RegExp(`^${pattern}$`).exec(filled);
  assert(fills !== null, 'only the placeholders changed');
  const changed = fills.slice(1).filter((f, i) => f !== ['...', 'pass'][i]);
  assert(changed.length === Number(counted[1]), 'as many placeholders changed as the report says were filled');
  const previewedFills = fillRows.map((row) => row.text.replace(/^[\s\u00a0]*[→│]\u00a0?/, '')).join('\n');
  assert(changed.every((f) => flat(previewedFills).includes(flat(f))), 'the accepted fills are the previewed ones');
  await page.keyboard.press('Control+Z');
  assert((await save(page, fillFile)) === FILL, 'one undo takes the whole fill back');
  timings.fill = seconds(t);

  // -- completions as you type off: nothing asked while typing, the status bar says so; on again ----------------------
  t = Date.now();
  await page.locator('.tab', { hasText: 'main.py' }).first().click();
  await editor.waitFor();
  await runCommand(page, 'Diffusion: Toggle Completions As You Type');
  const off = page.locator('.statusbar-item', { hasText: 'completions off' }).first();
  await off.waitFor();
  await page.screenshot({ path: join(artifacts, 'vscode-completions-off.png') });
  const inlineRequests = () => (channelLog(userData).match(/Sending request 'textDocument\/inlineCompletion/g) ?? []).length;
  const asked = inlineRequests();
  await editor.locator('.view-lines').click();
  await page.keyboard.press('Control+End');
  await page.keyboard.type('z');
  await page.waitForTimeout(1500); // past the debounce (0 here) and the trace's flush: a request would be logged by now
  assert(inlineRequests() === asked, 'off: typing sends no completion request');
  assert((await page.locator('.ghost-text-decoration, .ghost-text').count()) === 0, 'off: no ghost text');
  await page.keyboard.press('Backspace');
  await runCommand(page, 'Diffusion: Toggle Completions As You Type');
  await off.waitFor({ state: 'detached' });
  await page.locator('.statusbar-item', { hasText: /embedded/ }).first().waitFor();
  await editor.locator('.view-lines').click();
  await page.keyboard.press('Control+End');
  await page.keyboard.type('z');
  for (const deadline = Date.now() + TIMEOUT; inlineRequests() === asked && Date.now() < deadline; ) await page.waitForTimeout(200);
  assert(inlineRequests() > asked, 'on again: typing asks');
  await page.keyboard.press('Escape');
  await page.keyboard.press('Backspace');
  timings.toggle = seconds(t);

  console.log(`e2e: screenshots in ${artifacts}`);
  if (existsSync(serverLog)) console.log(`e2e: server log tail:\n${readFileSync(serverLog, 'utf8').split('\n').slice(-8).join('\n')}`);
}

/**
 * Types `char` at the cursor (the end of the file), sees the streamed preview (masked slots) and then the ghost text,
 * presses Tab and checks the saved file holds exactly that text after the cursor. Returns the file. With `accept`
 * false it stops once the preview has been seen and the request is over (what the model writes there is its own
 * business), and saves what was typed.
 */
async function complete(page, file, before, char, screenshot, { accept = true, askAgain = false } = {}) {
  const watch = await watchPreview(page);
  await page.keyboard.type(char);
  // as you type only the finished suggestion is drawn (diffusionLs.preview.asYouType is off): asked for with the
  // extension's Alt+\ (code-server binds no key to Trigger Inline Suggestion), the canvas streams
  await page.keyboard.press('Alt+Backslash');
  const preview = await watch.seen;
  await page.screenshot({ path: join(artifacts, screenshot) });
  console.log(`e2e: preview after-texts (in DOM order): ${JSON.stringify(preview)}`);
  assert(preview.some((p) => p.text.includes('·')), 'the preview shows masked slots as "·"');
  if (!accept) {
    await page.waitForFunction(() => window.__noPreview());
    await checkMaskColour(await watch.frames(), { required: false });
    await page.keyboard.press('Escape');
    const saved = await save(page, file);
    assert(saved === before + char, 'the file holds what was typed');
    return saved;
  }

  const ghost = page.locator('.ghost-text-decoration, .ghost-text').first();
  await ghost.waitFor({ state: 'attached' });
  // The inline part may come in several spans; the lines below the cursor are whole view lines.
  const shown = () =>
    page.evaluate(() =>
      [...document.querySelectorAll('.ghost-text-decoration, .ghost-text .view-line')]
        .map((e) => (e.classList.contains('view-line') ? `\n${e.textContent}` : e.textContent))
        .join(''),
    );
  let ghostText = await shown();
  if (screenshot === 'vscode-preview.png') await page.screenshot({ path: join(artifacts, 'vscode-ghost-text.png') });
  console.log(`e2e: ghost text: ${JSON.stringify(ghostText)}`);
  assert(ghostText.trim() !== '', 'the ghost text is not empty');
  await page.waitForFunction(() => window.__noPreview());
  await checkMaskColour(await watch.frames(), { required: true });

  const typed = before + char;
  if (askAgain) {
    // typed into the suggestion, it stands (answered from the last completion); asked for there, the model runs again
    // and the canvas streams (a trial's Alt+\ over a suggestion typed into was answered from memory: nothing moved)
    await page.keyboard.type(ghostText[0].replace('\u00a0', ' ')); // the DOM draws its spaces as no-break spaces
    await page.waitForTimeout(500);
    const rest = await page.locator('.ghost-text-decoration, .ghost-text').count();
    const again = await watchPreview(page);
    await page.keyboard.press('Alt+Backslash');
    const streamed = await again.seen;
    console.log(`e2e: asked again where a suggestion stands (${rest} ghost parts): ${JSON.stringify(streamed)}`);
    assert(rest > 0 && streamed.some((p) => p.text.includes('·')), 'asked where a suggestion stands, the canvas streams');
    await page.waitForFunction(() => window.__noPreview());
    await again.frames();
    await ghost.waitFor({ state: 'attached' });
    ghostText = ghostText[0] + (await shown()); // what Tab now inserts after the typed character
    console.log(`e2e: ghost text asked again: ${JSON.stringify(ghostText.slice(1))}`);
  }
  await page.keyboard.press('Tab');
  await page.locator('.ghost-text-decoration').first().waitFor({ state: 'detached' });
  const completed = await save(page, file);
  assert(completed.startsWith(typed), 'the completion goes after the cursor, leaving the text before it alone');
  const inserted = completed.slice(typed.length);
  console.log(`e2e: Tab inserted: ${JSON.stringify(inserted)}`);
  assert(inserted.length > 0, 'Tab inserted the suggestion');
  assert(same(inserted, ghostText), `Tab inserted the ghost text shown (${JSON.stringify(inserted)} vs ${JSON.stringify(ghostText)})`);
  return completed;
}

/** Puts the server at `path`: a link to the repository's (or DIFFUSION_LS_COMMAND), else a script running its Python. */
function installServer(path) {
  const venv = join(repo, '.venv/bin');
  const command = process.env.DIFFUSION_LS_COMMAND || join(venv, 'diffusion-ls');
  if (existsSync(command)) symlinkSync(command, path);
  else writeFileSync(path, `#!/bin/sh\nexec "${join(venv, 'python')}" -m server.cli "$@"\n`, { mode: 0o755 });
}

/** code-server's environment with no way to the server: PATH without it, no virtual environment or pipx, `home`. */
function withoutServer(home) {
  const env = { ...process.env, HOME: home, PYTHONPATH: repo };
  for (const key of ['VIRTUAL_ENV', 'PIPX_HOME', 'PIPX_BIN_DIR', 'XDG_DATA_HOME']) delete env[key];
  env.PATH = PATH.split(':').filter((dir) => dir && !existsSync(join(dir, 'diffusion-ls'))).join(':');
  return env;
}

/** The output channel's log so far, once it matches `pattern` (the match). */
async function waitForLog(userData, pattern) {
  const deadline = Date.now() + TIMEOUT;
  for (;;) {
    const match = pattern.exec(channelLog(userData));
    if (match) return match;
    if (Date.now() > deadline) throw new Error(`the output channel never showed ${pattern}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function channelLog(userData) {
  const logs = join(userData, 'logs');
  if (!existsSync(logs)) return '';
  return readdirSync(logs)
    .map((session) => join(logs, session, 'exthost1/diffusion-ls.diffusion-ls/Diffusion LS.log'))
    .filter((path) => existsSync(path))
    .map((path) => readFileSync(path, 'utf8'))
    .join('\n');
}

/** Selects the text to rewrite: lines REWRITE_LINE.. (REWRITE_LINES of them), from the indentation to the end. */
async function selectRewrite(page) {
  await goToLine(page, REWRITE_LINE);
  await page.keyboard.press('Home'); // the first non-blank
  for (let i = 1; i < REWRITE_LINES; i++) await page.keyboard.press('Shift+ArrowDown');
  await page.keyboard.press('Shift+End');
  // the status bar says "(N selected)" once the editor holds the selection: a menu asked for before then has no
  // selection to offer a rewrite for
  await page.locator('.statusbar-item', { hasText: /\(\d+ selected\)/ }).first().waitFor({ timeout: 10_000 }).catch(() => {
    console.log('e2e: the status bar shows no selection yet');
  });
}

/** Whether text matching `pattern` (default: the text to rewrite) is drawn struck through (a pending edit's decoration). */
async function struckThrough(page, pattern = /values/) {
  return page.evaluate(
    ({ source, flags }) =>
      [...document.querySelectorAll('.monaco-editor .view-lines span')].some(
        (e) => getComputedStyle(e).textDecorationLine.includes('line-through') && new RegExp(source, flags).test(e.textContent),
      ),
    { source: pattern.source, flags: pattern.flags },
  );
}

/** Whether text matching `pattern` is drawn with a wavy underline (a placeholder the fill kept). */
async function underlined(page, pattern) {
  return page.evaluate(
    ({ source, flags }) =>
      [...document.querySelectorAll('.monaco-editor .view-lines span')].some(
        (e) => getComputedStyle(e).textDecorationLine.includes('underline') && new RegExp(source, flags).test(e.textContent),
      ),
    { source: pattern.source, flags: pattern.flags },
  );
}

/** From now on, every text a CodeLens shows is kept in window.__lenses. */
async function recordLenses(page) {
  await page.evaluate(() => {
    window.__lenses = [];
    const record = () => {
      for (const lens of document.querySelectorAll('.codelens-decoration')) {
        const text = lens.textContent;
        if (text && window.__lenses[window.__lenses.length - 1] !== text) window.__lenses.push(text);
      }
    };
    new MutationObserver(record).observe(document.body, { subtree: true, childList: true, characterData: true });
  });
}

/** The rewrite preview: the after-texts of each view line that has some, top to bottom, and where they end. */
async function previewRows(page, name = 'main.py') {
  return page.evaluate((name) => {
    const editor = document.querySelector(`.monaco-editor[data-uri$="${name}"]`);
    const editorRight = editor.querySelector('.monaco-scrollable-element').getBoundingClientRect().right;
    return [...editor.querySelectorAll('.view-lines .view-line')]
      .map((line) => {
        const spans = [...line.querySelectorAll('span[class*="ced-"]')].filter((e) => {
          const content = getComputedStyle(e, '::after').content;
          // a refused completion's note on a line (an automatic request the cursor's moves set off) is no preview row
          return content && content !== 'none' && content !== 'normal' && !content.includes('no suggestion: ');
        });
        return {
          top: parseFloat(line.style.top),
          text: spans.map((e) => JSON.parse(getComputedStyle(e, '::after').content)).join(''),
          right: Math.max(0, ...spans.map((e) => e.getBoundingClientRect().right)),
          editorRight,
        };
      })
      .filter((row) => row.text !== '')
      .sort((a, b) => a.top - b.top);
  }, name);
}

/** The extension's output channel (the server's stderr and the client's messages), for a failed run. */
function dumpLogs() {
  console.error(`-- browser console (last 40 lines):\n${consoleLines.slice(-40).join('\n')}`);
  const logs = join(tmp, 'user-data/logs');
  if (!existsSync(logs)) return;
  for (const session of readdirSync(logs)) {
    const channel = join(logs, session, 'exthost1/diffusion-ls.diffusion-ls/Diffusion LS.log');
    if (existsSync(channel)) console.error(`-- output channel:\n${readFileSync(channel, 'utf8').split('\n').slice(-60).join('\n')}`);
  }
}

function userSettings(serverLog) {
  return {
    // Keep the canvas small. One token per forward: every request streams a canvas per token, so the preview and the
    // CodeLens have something to follow on a fast machine too.
    'diffusionLs.maxTokens': 16,
    'diffusionLs.blockSize': 16,
    'diffusionLs.steps': 16,
    'diffusionLs.strategy': 'confidence',
    'diffusionLs.rewrite.mode': 'refine', // the model keeps the line breaks of what it refines: a multi-line answer
    'diffusionLs.debounceMs': 0,
    // Every fill shown: one token per forward decides unsure tokens too, which the default minConfidence would hide,
    // and takes up to 16 forwards, past the default typingForwards.
    'diffusionLs.minConfidence': 0,
    'diffusionLs.typingForwards': 0,
    // The server holds each intermediate canvas this long: a fill of a few ~15 ms forwards is over before VS Code asks
    // the CodeLens provider again (it waits for 250 ms of quiet), and the preview draws at most one canvas per 16 ms.
    // Held, every canvas is drawn, and the rewrite (about 15 forwards) streams for seconds: the CodeLens shows counts.
    'diffusionLs.canvasDelayMs': 200,
    'diffusionLs.logLevel': 'debug',
    'diffusionLs.logFile': serverLog,
    'diffusionLs.trace.server': 'messages',
    'workbench.startupEditor': 'none',
    'workbench.tips.enabled': false,
    'workbench.secondarySideBar.defaultVisibility': 'hidden',
    'chat.disableAIFeatures': true,
    'security.workspace.trust.enabled': false,
    'extensions.ignoreRecommendations': true,
    'telemetry.telemetryLevel': 'off',
    'update.mode': 'none',
    'git.enabled': false,
    'editor.editContext': false,
    'editor.quickSuggestions': { other: 'off', comments: 'off', strings: 'off' },
    'editor.suggestOnTriggerCharacters': false,
    'editor.wordBasedSuggestions': 'off',
    'editor.inlineSuggest.enabled': true,
    'editor.minimap.enabled': false,
    'editor.fontSize': 16,
    'files.autoSave': 'off',
    'files.insertFinalNewline': false,
    'files.trimTrailingWhitespace': false,
    ...JSON.parse(process.env.DIFFUSION_LS_E2E_SETTINGS || '{}'), // e.g. a device, or logging while debugging
  };
}

/**
 * Starts recording every frame of the preview the editor draws (its after-texts in DOM order, with their colours) in
 * window.__frames; `seen` resolves with the first frame that shows a masked slot, `frames()` stops the recording and
 * returns them all. A MutationObserver sees every change of the view lines, so a canvas that is drawn for a few
 * milliseconds only is not missed between two polls; and the server holds each canvas (canvasDelayMs), so every
 * canvas of the stream is drawn (the preview draws at most one canvas per 16 ms, the latest).
 */
async function watchPreview(page) {
  await page.evaluate(() => {
    window.__framesObserver?.disconnect();
    const frames = (window.__frames = []);
    const read = () =>
      [...document.querySelectorAll('.monaco-editor .view-lines span[class*="ced-"]')]
        .map((e) => getComputedStyle(e, '::after'))
        .filter((style) => style.content && style.content !== 'none' && style.content !== 'normal')
        .filter((style) => !style.content.includes('no suggestion: ')) // a refused completion's note, not a canvas
        .map((style) => ({ text: JSON.parse(style.content), color: style.color }));
    const observer = (window.__framesObserver = new MutationObserver(() => {
      const parts = read();
      if (parts.length > 0 && JSON.stringify(parts) !== JSON.stringify(frames[frames.length - 1])) frames.push(parts);
    }));
    observer.observe(document.querySelector('.monaco-workbench'), { subtree: true, childList: true, attributes: true });
  });
  return {
    seen: page
      .waitForFunction(() => window.__frames.find((frame) => frame.some((p) => p.text.includes('·'))), undefined, { timeout: TIMEOUT })
      .then((h) => h.jsonValue()),
    frames: () => page.evaluate(() => (window.__framesObserver.disconnect(), window.__frames)),
  };
}

/**
 * Masked slots and decided text in one intermediate frame of the preview, drawn in different colours. The frame is
 * the first one recorded (watchPreview) that has both a run of masked slots only and a run of decided text (a line
 * break mark "⏎" is neither: it is drawn faint, like the masks). `required`: the fill has such a frame (the first
 * completion's does: " is" beside masks, then " is returned"); elsewhere what the model writes is its own business
 * (after the restart it writes a line break: masks, then "⏎" beside masks), and the colours are compared if it has.
 */
async function checkMaskColour(frames, { required }) {
  const decided = (p) => !p.text.includes('·') && p.text.replace(/⏎/g, '').trim() !== '';
  const both = frames.find((frame) => frame.some((p) => /^·+$/.test(p.text)) && frame.some(decided));
  console.log(`e2e: preview frames drawn: ${JSON.stringify(frames.map((frame) => frame.map((p) => p.text).join('')))}`);
  console.log(`e2e: the first with masked slots and decided text: ${JSON.stringify(both)}`);
  if (!required && !both) return;
  assert(both, 'an intermediate frame shows decided text and masked slots together');
  const maskColor = both.find((p) => /^·+$/.test(p.text)).color;
  const textColor = both.find(decided).color;
  assert(maskColor !== textColor, 'masked slots are drawn in another (fainter) colour');
}

async function afterTexts(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('.monaco-editor .view-lines span[class*="ced-"]')]
      .map((e) => getComputedStyle(e, '::after'))
      .filter((s) => s.content && s.content !== 'none' && s.content !== 'normal' && !s.content.includes('no suggestion: '))
      .map((s) => ({ text: JSON.parse(s.content), color: s.color })),
  );
}

async function openFile(page, name) {
  await page.keyboard.press('Control+P');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor();
  await input.fill(name);
  await page.locator('.quick-input-list .monaco-list-row', { hasText: name }).first().waitFor();
  await page.keyboard.press('Enter');
  await page.locator(`.monaco-editor[data-uri$="${name}"]`).first().waitFor();
}

/** Whether the quick input is gone within 3 s: the command palette takes a moment to close after Enter, and a fast
 * answer (r5 on a fast run) came before it had; an instruction prompt would stay. */
async function quickInputClosed(page) {
  try {
    await page.locator('.quick-input-widget').waitFor({ state: 'hidden', timeout: 3000 });
    return true;
  } catch {
    return false;
  }
}

/** The Refactor menu's row for this action. The menu is asked for again when it opens without it: a CI run's menu
 * stayed closed for 120 s with the action's lightbulb showing (the code action request still pending, we think). */
async function refactorAction(page, title, select) {
  const row = page.locator('.action-widget .monaco-list-row.action', { hasText: title }).first();
  for (let i = 0; i < 3; i++) {
    await select(); // again at each try: the Escape that closes a menu without the action also drops the selection
    await runCommand(page, 'Refactor...');
    try {
      await row.waitFor({ timeout: 20_000 });
      return row;
    } catch {
      console.log(`e2e: the Refactor menu opened without "${title}"; asking again`);
      await page.keyboard.press('Escape');
    }
  }
  await select();
  await runCommand(page, 'Refactor...');
  await row.waitFor();
  return row;
}

async function runCommand(page, title) {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor();
  await input.fill(`>${title}`);
  await page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first().waitFor();
  await page.keyboard.press('Enter');
}

async function goToLine(page, line) {
  await page.keyboard.press('Control+G');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor();
  await input.fill(`:${line}`);
  await page.keyboard.press('Enter');
  await input.waitFor({ state: 'hidden' });
}

/** Saves the active editor if it has changes and returns the file's text once it is written. */
async function save(page, file) {
  const dirty = page.locator('.tab.active.dirty');
  if ((await dirty.count()) > 0) {
    await page.keyboard.press('Control+S');
    await dirty.waitFor({ state: 'detached' });
  }
  return readFileSync(file, 'utf8');
}

/** The same text, up to how the editor draws whitespace and line breaks in ghost text and decorations. */
function same(a, b) {
  return flat(a) === flat(b);
}

function flat(s) {
  return s.replace(/⏎/g, ' ').replace(/[\s\u00a0]+/g, ' ').trim();
}

function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
  console.log(`e2e: ok - ${message}`);
}

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (scripts/ci.sh sets it)`);
  return value;
}

function seconds(since) {
  return Math.round((Date.now() - since) / 100) / 10;
}

function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

async function waitForHttp(url, timeoutMs, log) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(url, { redirect: 'manual' });
      if (response.status === 302 || response.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`code-server did not answer on ${url}:\n${log()}`);
}

/** Stops a process and everything it started (code-server, its extension host, the language server). */
function stopTree(child) {
  if (!child?.pid) return;
  const pids = [child.pid, ...descendants(child.pid)];
  for (const pid of pids.reverse()) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && pids.some(alive)) spawnSync('sleep', ['0.1']);
  for (const pid of pids.filter(alive)) process.kill(pid, 'SIGKILL');
}

function descendants(root) {
  const children = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // exited meanwhile
    }
  }
  const out = [];
  const walk = (pid) => (children.get(pid) ?? []).forEach((c) => (out.push(c), walk(c)));
  walk(root);
  return out;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
