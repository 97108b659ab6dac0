#!/usr/bin/env node
// End-to-end test of the packaged extension in a real VS Code: code-server in headless Chromium (playwright-core),
// talking to the real diffusion-ls server and the shipped model.
//
//   1. installs the .vsix into a fresh extensions dir, writes user settings that start the repository's server;
//   2. types in a Python file, sees the streamed preview (masked slots), then VS Code's ghost text; Tab inserts it;
//   3. rewrites a selection, sees the preview (old text struck through) and the document unchanged, accepts it.
// Screenshots go to $DIFFUSION_LS_E2E_ARTIFACTS (default: <repo>/build/e2e). Every process it starts is stopped.
//
// Environment: CODE_SERVER (required), NODE24_BIN (prepended to PATH for code-server), CHROMIUM (/usr/bin/chromium),
// VSIX (out/diffusion-ls.vsix), DIFFUSION_LS_COMMAND (default: <repo>/.venv/bin/diffusion-ls, else the venv's python
// with `-m server.cli`), DIFFUSION_LS_E2E_SETTINGS (JSON merged into the user settings), DIFFUSION_LS_E2E_KEEP=1
// (keep the temporary folder: logs, user data).

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

// The shipped model is an untrained placeholder: code it writes rarely survives the syntax-boundary truncation, words
// in a comment do. So the completion and the rewrite happen in comments.
const ORIGINAL = [
  'def add(a, b):',
  '    return a + b',
  '',
  '',
  'def mean(values):',
  '    # add up the values, then divide',
  '    total = 0',
  '    for v in values:',
  '        total = add(total, v)',
  '    return total / len(values)',
  '',
  '',
  'def square(x):',
  '    # the square of ',
].join('\n');
const REWRITE_LINE = 6; // 1-based
const REWRITE_TEXT = 'add up the values, then divide';

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
  mkdirSync(join(userData, 'User'), { recursive: true });
  mkdirSync(workspace, { recursive: true });
  const file = join(workspace, 'main.py');
  writeFileSync(file, ORIGINAL);
  const serverLog = join(tmp, 'server.log');

  let t = Date.now();
  const csArgs = ['--user-data-dir', userData, '--extensions-dir', extensions, '--config', join(tmp, 'config.yaml')];
  const install = spawnSync(codeServer, [...csArgs, '--install-extension', vsix], { env: { ...process.env, PATH }, encoding: 'utf8' });
  if (install.status !== 0 || !/successfully installed/i.test(install.stdout + install.stderr)) {
    throw new Error(`installing the vsix failed:\n${install.stdout}\n${install.stderr}`);
  }
  timings.installVsix = seconds(t);

  writeFileSync(join(userData, 'User/settings.json'), JSON.stringify(userSettings(serverLog), null, 2));

  t = Date.now();
  const port = await freePort();
  serverProcess = spawn(
    codeServer,
    [...csArgs, '--bind-addr', `127.0.0.1:${port}`, '--auth', 'none', '--disable-telemetry', '--disable-update-check',
      '--disable-workspace-trust', '--disable-getting-started-override', workspace],
    { env: { ...process.env, PATH, PYTHONPATH: repo }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
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
  await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}`);
  await page.locator('.monaco-workbench').waitFor();
  await openFile(page, 'main.py');
  await page.locator('.statusbar-item', { hasText: /embedded/ }).first().waitFor();
  timings.workbenchReady = seconds(t);

  // -- completion: streamed preview, then ghost text, Tab inserts it ---------------------------------------------
  t = Date.now();
  const editor = page.locator('.monaco-editor[data-uri$="main.py"]').first();
  await editor.locator('.view-lines').click();
  await page.keyboard.press('Control+End');
  const previewSeen = watchPreview(page);
  await page.keyboard.type('x');
  const preview = await previewSeen;
  await page.screenshot({ path: join(artifacts, 'vscode-preview.png') });
  console.log(`e2e: preview after-texts (in DOM order): ${JSON.stringify(preview)}`);
  assert(preview.some((p) => p.text.includes('·')), 'the preview shows masked slots as "·"');
  const maskColor = preview.find((p) => /^·+$/.test(p.text))?.color;
  const textColor = preview.find((p) => !p.text.includes('·') && p.text.trim())?.color;
  if (maskColor && textColor) assert(maskColor !== textColor, 'masked slots are drawn in another (fainter) colour');

  const ghost = page.locator('.ghost-text-decoration, .ghost-text').first();
  await ghost.waitFor({ state: 'attached' });
  // The inline part may come in several spans; the lines below the cursor are whole view lines.
  const ghostText = await page.evaluate(() =>
    [...document.querySelectorAll('.ghost-text-decoration, .ghost-text .view-line')]
      .map((e) => (e.classList.contains('view-line') ? `\n${e.textContent}` : e.textContent))
      .join(''),
  );
  await page.screenshot({ path: join(artifacts, 'vscode-ghost-text.png') });
  console.log(`e2e: ghost text: ${JSON.stringify(ghostText)}`);
  assert(ghostText.trim() !== '', 'the ghost text is not empty');
  await page.waitForFunction(() => document.querySelectorAll('.monaco-editor .view-lines span[class*="ced-"]').length === 0);

  const typed = ORIGINAL + 'x';
  await page.keyboard.press('Tab');
  await page.locator('.ghost-text-decoration').first().waitFor({ state: 'detached' });
  const completed = await save(page, file);
  assert(completed.startsWith(typed), 'the completion goes after the cursor, leaving the text before it alone');
  const inserted = completed.slice(typed.length);
  console.log(`e2e: Tab inserted: ${JSON.stringify(inserted)}`);
  assert(inserted.length > 0, 'Tab inserted the suggestion');
  assert(same(inserted, ghostText), `Tab inserted the ghost text shown (${JSON.stringify(inserted)} vs ${JSON.stringify(ghostText)})`);
  timings.completion = seconds(t);

  // -- rewrite a selection: preview over it, nothing changes until accept --------------------------------------------
  t = Date.now();
  await goToLine(page, REWRITE_LINE);
  await page.keyboard.press('End');
  await page.keyboard.press('Shift+Home'); // selects "# add up ..." (Home stops at the indentation)
  await page.keyboard.press('Shift+ArrowRight');
  await page.keyboard.press('Shift+ArrowRight'); // now "add up the values, then divide"
  const lines = completed.split('\n');
  const selected = REWRITE_TEXT;
  const start = lines.slice(0, REWRITE_LINE - 1).join('\n').length + 1 + lines[REWRITE_LINE - 1].indexOf(selected);
  const end = start + selected.length;
  assert(completed.slice(start, end) === selected, 'the selection to rewrite is in the file');
  await runCommand(page, 'Diffusion: Rewrite Selection');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor();
  await input.fill('start from zero');
  await page.keyboard.press('Enter');
  const accept = page.locator('.codelens-decoration a', { hasText: 'Accept rewrite' });
  await accept.waitFor();
  const rewritePreview = await afterTexts(page);
  await page.screenshot({ path: join(artifacts, 'vscode-rewrite.png') });
  console.log(`e2e: rewrite preview: ${JSON.stringify(rewritePreview)}`);
  const struck = await page.evaluate(() =>
    [...document.querySelectorAll('.monaco-editor .view-lines span')].some(
      (e) => getComputedStyle(e).textDecorationLine.includes('line-through') && e.textContent.includes('values'),
    ),
  );
  assert(struck, 'the selected text is struck through while the rewrite is pending');
  assert((await page.locator('.tab.active.dirty').count()) === 0, 'nothing changes in the document before accept');

  await accept.click();
  await accept.waitFor({ state: 'detached' });
  const rewritten = await save(page, file);
  assert(rewritten.startsWith(completed.slice(0, start)), 'the text before the selection is unchanged');
  assert(rewritten.endsWith(completed.slice(end)), 'the text after the selection is unchanged');
  const newText = rewritten.slice(start, rewritten.length - (completed.length - end));
  console.log(`e2e: rewrite replaced ${JSON.stringify(selected)} with ${JSON.stringify(newText)}`);
  const previewed = rewritePreview.filter((p, i) => !(i === 0 && p.text.trim() === '→')).map((p) => p.text).join('');
  assert(rewritePreview[0]?.text.trim() === '→', 'the new text is drawn after an arrow');
  assert(same(newText, previewed), 'the accepted text is the previewed one');
  timings.rewrite = seconds(t);
  console.log(`e2e: screenshots in ${artifacts}`);
  if (existsSync(serverLog)) console.log(`e2e: server log tail:\n${readFileSync(serverLog, 'utf8').split('\n').slice(-8).join('\n')}`);
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
  const venv = join(repo, '.venv/bin');
  const command = process.env.DIFFUSION_LS_COMMAND || (existsSync(join(venv, 'diffusion-ls')) ? join(venv, 'diffusion-ls') : '');
  return {
    ...(command ? { 'diffusionLs.server.command': command } : { 'diffusionLs.pythonPath': join(venv, 'python') }),
    // The shipped model is a small placeholder that never predicts an end: keep the canvas small.
    'diffusionLs.maxTokens': 16,
    'diffusionLs.blockSize': 16,
    'diffusionLs.steps': 8,
    'diffusionLs.strategy': 'confidence', // a fixed number of tokens per forward: every request streams 8 canvases
    'diffusionLs.debounceMs': 0,
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

/** Resolves with the preview's after-texts the first time one shows a masked slot (polled every frame). */
async function watchPreview(page) {
  const handle = await page.waitForFunction(
    () => {
      const parts = [...document.querySelectorAll('.monaco-editor .view-lines span[class*="ced-"]')]
        .map((e) => ({ style: getComputedStyle(e, '::after') }))
        .filter(({ style }) => style.content && style.content !== 'none' && style.content !== 'normal')
        .map(({ style }) => ({ text: JSON.parse(style.content), color: style.color }));
      return parts.some((p) => p.text.includes('·')) ? parts : false;
    },
    undefined,
    { polling: 'raf', timeout: TIMEOUT },
  );
  return handle.jsonValue();
}

async function afterTexts(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('.monaco-editor .view-lines span[class*="ced-"]')]
      .map((e) => getComputedStyle(e, '::after'))
      .filter((s) => s.content && s.content !== 'none' && s.content !== 'normal')
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
  const norm = (s) => s.replace(/⏎/g, ' ').replace(/[\s\u00a0]+/g, ' ').trim();
  return norm(a) === norm(b);
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
