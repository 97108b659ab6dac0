-- The plugin's pure parts, and ghost text drawing / accepting for multi-line, multi-word completions.
-- The transport is a stub here: the shipped placeholder model cannot be steered into such completions, so e2e.lua
-- (the real server) cannot cover them reliably. Errors fail the run (test_neovim.py checks the exit code).

local ghost = require('diffusion_ls.ghost')
local lsp = require('diffusion_ls.lsp')
local config = require('diffusion_ls.config')

local function eq(got, want, what)
  if not vim.deep_equal(got, want) then
    error(('%s:\n  want %s\n  got  %s'):format(what, vim.inspect(want), vim.inspect(got)), 2)
  end
end

-- accept units
eq(ghost.next_word('foo bar'), 'foo', 'word')
eq(ghost.next_word('  foo.bar'), '  foo', 'word after blanks')
eq(ghost.next_word('.bar'), '.', 'punctuation run')
eq(ghost.next_word('), x'), '),', 'punctuation run stops at a blank')
eq(ghost.next_word('\n    return x'), '\n    return', 'newline and indent come with the next word')
eq(ghost.next_word('  '), '  ', 'only blanks')
eq(ghost.next_line('a + b\nc'), 'a + b', 'line')
eq(ghost.next_line('\n    c\nd'), '\n    c', 'a leading newline takes the next line')

-- chunks: lines of [text, hl], masked ranges (UTF-16 units) dim; '·' is one unit, 'é' one, '😀' two
eq(ghost.chunks('ab··\n·x', { { 2, 4 }, { 5, 6 } }, 'G', 'M'),
  { { { 'ab', 'G' }, { '··', 'M' } }, { { '·', 'M' }, { 'x', 'G' } } }, 'chunks')
eq(ghost.chunks('😀·é', { { 2, 3 } }, 'G', 'M'), { { { '😀', 'G' }, { '·', 'M' }, { 'é', 'G' } } }, 'surrogates')
eq(ghost.chunks('a\n\nb', {}, 'G', 'M'), { { { 'a', 'G' } }, {}, { { 'b', 'G' } } }, 'empty line')
eq(ghost.chunks('··\n··', { { 0, 5 } }, 'G', 'M'), { { { '··', 'M' } }, { { '··', 'M' } } }, 'mask over a newline')
-- a CRLF buffer's text: the "\r" ends its line and is not drawn (it would show as ^M); masks count it
eq(ghost.chunks('ab\r\ncd', {}, 'G', 'M'), { { { 'ab', 'G' } }, { { 'cd', 'G' } } }, 'CRLF')
eq(ghost.chunks('a·\r\n·b', { { 1, 2 }, { 4, 5 } }, 'G', 'M'),
  { { { 'a', 'G' }, { '·', 'M' } }, { { '·', 'M' }, { 'b', 'G' } } }, 'CRLF with masks')

-- config validation: each invalid or unknown option is named and its default used; every other option applies
eq(config.set({ rewrite_mode = 'refine', keymaps = { accept = false } }), {}, 'valid options: no problem')
eq(config.get().keymaps.accept, false, 'keymap disabled')
eq(config.get().keymaps.accept_word, '<C-Right>', 'other keymaps keep their defaults')
local problems = config.set({
  debounce_ms = 'fast', rewrite_mode = 'refine', cmd = {}, bogus = true,
  keymaps = { accept = 1, nope = 'x', dismiss = false },
})
eq(problems, {
  'cmd: expected non-empty list of strings, got {}; using the default { "diffusion-ls", "serve" }',
  'debounce_ms: expected number >= 0, got "fast"; using the default 150',
  'keymaps.accept: expected string or false, got 1; using the default "<Tab>"',
  'unknown keymap keymaps.nope ignored',
  'unknown option bogus ignored',
}, 'every problem named, sorted')
eq(config.problems(), problems, 'kept for :checkhealth')
eq({ config.get().debounce_ms, config.get().cmd, config.get().keymaps.accept }, { 150, { 'diffusion-ls', 'serve' }, '<Tab>' },
  'invalid options: their defaults')
eq({ config.get().rewrite_mode, config.get().keymaps.dismiss }, { 'refine', false }, 'valid options next to them apply')
eq(config.set({ debounce_ms = -1 })[1], 'debounce_ms: expected number >= 0, got -1; using the default 150', 'negative')
eq(config.set('fast'), { 'options must be a table, got string; using the defaults' }, 'not a table')
eq(config.set({ filetypes = { 'lua' } }), {}, 'a list')
eq(config.get().filetypes, { 'lua' }, 'lists replace the default list')
eq(config.set({}), {}, 'defaults')
eq(config.problems(), {}, 'problems cleared')

-- settings go out as a JSON object, also when empty (an empty Lua table is encoded as the array [])
eq(vim.json.encode(lsp.client_config(0).init_options), '{}', 'empty server_settings: an object')
config.set({ server_settings = { steps = 16 } })
eq(vim.json.encode(lsp.client_config(0).init_options), '{"steps":16}', 'server_settings as given')
config.set({})

-- highlights: ghost text, masked slots and the hint differ from Normal without 'termguicolors' too
local function resolved(name)
  return vim.api.nvim_get_hl(0, { name = name, link = false })
end
local function looks(hl, gui)
  if gui then
    return { fg = hl.fg, bg = hl.bg }
  end
  return { fg = hl.ctermfg, bg = hl.ctermbg, attrs = hl.cterm or {} }
end
local function check_highlights(what)
  for _, gui in ipairs({ false, true }) do
    vim.o.termguicolors = gui
    local normal = looks(resolved('Normal'), gui)
    for _, name in ipairs({ 'DiffusionLsGhost', 'DiffusionLsMasked', 'DiffusionLsHint' }) do
      local hl = looks(resolved(name), gui)
      if hl.fg == nil or vim.deep_equal(hl, normal) then
        error(('%s: %s looks like Normal with termguicolors=%s: %s vs %s'):format(
          what, name, gui, vim.inspect(hl), vim.inspect(normal)))
      end
    end
  end
  vim.o.termguicolors = false
end
eq(vim.o.termguicolors, false, 'headless starts without termguicolors')
eq(resolved('Comment').ctermfg, nil, 'the default colorscheme gives Comment no cterm color (the reported case)')
check_highlights('default colorscheme, dark')
eq(resolved('DiffusionLsGhost').fg, resolved('Comment').fg, 'the GUI color is the colorscheme\'s Comment')
require('diffusion_ls').setup({}) -- the ColorScheme autocommand
vim.o.background = 'light'
vim.cmd.colorscheme('default')
check_highlights('default colorscheme, light')
eq(resolved('DiffusionLsGhost').fg, resolved('Comment').fg, 'light: the GUI color follows Comment')
vim.cmd.colorscheme('desert') -- gives Comment a cterm color: linked as is
eq(vim.api.nvim_get_hl(0, { name = 'DiffusionLsGhost' }).link, 'Comment', 'linked when Comment has a cterm color')
check_highlights('desert')
vim.api.nvim_set_hl(0, 'DiffusionLsGhost', { ctermfg = 1, fg = '#ff0000' })
require('diffusion_ls.highlights').set()
eq(vim.api.nvim_get_hl(0, { name = 'DiffusionLsGhost' }), { ctermfg = 1, fg = 0xff0000 }, 'a user\'s group is kept')
vim.o.background = 'dark'
vim.cmd.colorscheme('default')

-- a stubbed transport: requests are captured, canvases and results are fed by hand
local fake = { id = 1, offset_encoding = 'utf-16', initialized = true, attached_buffers = {} }
function fake:is_stopped()
  return false
end
-- diffusion/status answers at once with this (the tests change it)
local fake_status = { backend = 'embedded', model = 'tiny-17m', loaded = true, capabilities = { instructions = false } }
function fake:request(method, _, handler)
  assert(method == 'diffusion/status', method)
  handler(nil, fake_status, {})
  return true, 99
end
local sent
lsp.with_client = function(_, fn)
  fn(fake)
end
lsp.get_client = function()
  return fake
end
lsp.request = function(client, bufnr, method, params, on_result, on_canvas)
  local req = { client = client, bufnr = bufnr, id = 7, tick = vim.api.nvim_buf_get_changedtick(bufnr), version = 3 }
  sent = { method = method, params = params, on_result = on_result, on_canvas = on_canvas, req = req }
  return req
end
lsp.cancel = function(req)
  if req then
    req.cancelled = true
  end
end

local function marks()
  local out = {}
  for _, m in ipairs(vim.api.nvim_buf_get_extmarks(0, ghost.ns, 0, -1, { details = true })) do
    out[#out + 1] = { m[2], m[3], m[4].virt_text, m[4].virt_lines }
  end
  return out
end

local function lines()
  return vim.api.nvim_buf_get_lines(0, 0, -1, false)
end

local function range(l1, c1, l2, c2)
  return { start = { line = l1, character = c1 }, ['end'] = { line = l2, character = c2 } }
end

vim.api.nvim_buf_set_lines(0, 0, -1, false, { 'x = foo()', 'y = 1' })
vim.api.nvim_win_set_cursor(0, { 1, 8 }) -- on ')'
ghost.trigger()
eq(sent.method, 'textDocument/inlineCompletion', 'method')
eq(sent.params.position, { line = 0, character = 8 }, 'position')
eq(sent.params.context, { triggerKind = 1 }, 'invoked')

-- an intermediate canvas: first line inline at the cursor, the rest as virtual lines, masks dim
local canvas = { version = 3, range = range(0, 8, 0, 8), text = 'a·, \n··', masks = { { 1, 2 }, { 5, 7 } }, step = 1 }
sent.on_canvas(canvas, sent.req)
eq(marks(), { { 0, 8, { { 'a', 'DiffusionLsGhost' }, { '·', 'DiffusionLsMasked' }, { ', ', 'DiffusionLsGhost' } },
  { { { '··', 'DiffusionLsMasked' } } } } }, 'canvas drawn')
eq(ghost.visible(), false, 'a canvas in progress is not acceptable')
-- a canvas for another document version is not drawn
sent.on_canvas({ version = 2, range = range(0, 8, 0, 8), text = 'zzz', masks = {}, step = 2 }, sent.req)
eq(marks()[1][3][1][1], 'a', 'old version ignored')

-- the result re-types the rest of the line (its range ends after ')')
sent.on_result(nil, { items = { { insertText = 'a, b\n    c)', range = range(0, 8, 0, 9) } } }, sent.req)
eq(marks(), { { 0, 8, { { 'a, b', 'DiffusionLsGhost' } }, { { { '    c)', 'DiffusionLsGhost' } } } } }, 'result drawn')
eq(ghost.get().replace, 1, 'replaces the ")"')

eq(ghost.accept('word'), true, 'accept word')
eq(lines(), { 'x = foo(a)', 'y = 1' }, 'a word')
eq(vim.api.nvim_win_get_cursor(0), { 1, 9 }, 'cursor after the word')
eq(marks(), { { 0, 9, { { ', b', 'DiffusionLsGhost' } }, { { { '    c)', 'DiffusionLsGhost' } } } } }, 'rest drawn')
ghost.accept('word')
eq(lines(), { 'x = foo(a,)', 'y = 1' }, 'punctuation')
ghost.accept('line')
eq(lines(), { 'x = foo(a, b)', 'y = 1' }, 'rest of the line')
eq(ghost.get().text, '\n    c)', 'the next line is left')
ghost.accept('line')
eq(lines(), { 'x = foo(a, b', '    c)', 'y = 1' }, 'the last line replaces the ")"')
eq(ghost.get(), nil, 'all accepted')
eq(marks(), {}, 'nothing drawn')

-- a CRLF buffer's answer (the server writes its line breaks): a partial accept leaves exactly the rest, no stray byte
vim.api.nvim_buf_set_lines(0, 0, -1, false, { 'x = foo()', 'y = 1' })
vim.api.nvim_win_set_cursor(0, { 1, 8 })
ghost.trigger()
sent.on_result(nil, { items = { { insertText = 'a,\r\n    b', range = range(0, 8, 0, 8) } } }, sent.req)
ghost.accept('line')
eq(lines()[1], 'x = foo(a,)', 'the first line accepted, without the "\\r" of its line break')
eq(ghost.get().text, '\r\n    b', 'the rest left')
ghost.accept('word')
eq(lines(), { 'x = foo(a,', '    b)', 'y = 1' }, 'the CRLF line break went in as a line break')
eq(ghost.get(), nil, 'all accepted, nothing left over')

-- typing what the ghost text starts with keeps it (no new request); anything else does not
-- (the cursor sits on a ")" after the hole: in this normal-mode test a column past the line's end is not kept)
vim.api.nvim_buf_set_lines(0, 0, -1, false, { 'z = )', 'y = 1' })
vim.api.nvim_win_set_cursor(0, { 1, 4 })
ghost.trigger()
local through = sent
through.on_result(nil, { items = { { insertText = 'foo(1', range = range(0, 4, 0, 4) } } }, through.req)
eq(ghost.get().text, 'foo(1', 'shown')
vim.api.nvim_buf_set_text(0, 0, 4, 0, 4, { 'fo' })
vim.api.nvim_win_set_cursor(0, { 1, 6 })
eq(ghost.type_through(0), true, 'typed "fo" of "foo(1"')
eq({ ghost.get().text, ghost.get().col, ghost.get().final }, { 'o(1', 6, true }, 'the rest, after the cursor')
eq(marks(), { { 0, 6, { { 'o(1', 'DiffusionLsGhost' } }, nil } }, 'drawn at the cursor')
eq(sent, through, 'no new request')
eq(ghost.type_through(0), false, 'nothing more typed')
vim.api.nvim_buf_set_text(0, 0, 6, 0, 6, { 'x' })
vim.api.nvim_win_set_cursor(0, { 1, 7 })
eq(ghost.type_through(0), false, 'a character the ghost text does not start with')
vim.api.nvim_buf_set_text(0, 0, 6, 0, 7, { '' })
vim.api.nvim_buf_set_text(0, 0, 0, 0, 1, { 'Z' })
vim.api.nvim_buf_set_text(0, 0, 6, 0, 6, { 'o' })
vim.api.nvim_win_set_cursor(0, { 1, 7 })
eq(vim.api.nvim_get_current_line(), 'Z = foo)', 'typed "o" after changing the line before the anchor')
eq(ghost.type_through(0), false, 'text changed before the anchor')
ghost.dismiss()
vim.api.nvim_buf_set_lines(0, 0, -1, false, { 'z = )', 'y = 1' })
vim.api.nvim_win_set_cursor(0, { 1, 4 })
ghost.trigger()
sent.on_result(nil, { items = { { insertText = 'ab', range = range(0, 4, 0, 4) } } }, sent.req)
vim.api.nvim_buf_set_text(0, 0, 4, 0, 4, { 'a' })
vim.api.nvim_win_set_cursor(0, { 1, 5 })
eq(ghost.type_through(0), true, 'typed "a" of "ab"')
eq(ghost.accept('all'), true, 'accept after typing through')
eq(lines(), { 'z = ab)', 'y = 1' }, 'the rest lands after the typed part')
eq(ghost.get(), nil, 'all accepted')
vim.api.nvim_buf_set_lines(0, 0, -1, false, { 'x = foo(a, b', '    c)', 'y = 1' })

-- stale: the buffer changes while the request runs -> nothing from it is drawn
vim.api.nvim_win_set_cursor(0, { 3, 0 })
vim.api.nvim_buf_set_lines(0, 2, 3, false, { 'y = ' })
vim.api.nvim_win_set_cursor(0, { 3, 4 })
ghost.trigger()
local req = sent.req
vim.api.nvim_buf_set_lines(0, 2, 3, false, { 'y = 2' })
sent.on_canvas({ version = 3, range = range(2, 4, 2, 4), text = '1·', masks = { { 1, 2 } }, step = 1 }, req)
sent.on_result(nil, { items = { { insertText = '1', range = range(2, 4, 2, 4) } } }, req)
eq(marks(), {}, 'stale canvas and result not drawn')
eq(req.cancelled, true, 'stale request cancelled')

-- the cursor moved away: dismissed
vim.api.nvim_win_set_cursor(0, { 3, 4 })
ghost.trigger()
vim.api.nvim_win_set_cursor(0, { 1, 0 })
sent.on_result(nil, { items = { { insertText = 'zz', range = range(2, 4, 2, 4) } } }, sent.req)
eq(marks(), {}, 'not drawn after the cursor moved')
eq(ghost.get(), nil, 'dismissed')

-- notifications, captured (on a wide screen: lsp.say shortens what the command line cannot hold, tested below)
vim.o.columns = 200
local notes = {}
vim.notify = function(msg, level)
  notes[#notes + 1] = { msg, level }
end
local WARN, INFO = vim.log.levels.WARN, vim.log.levels.INFO
local rewrite = require('diffusion_ls.rewrite')
local function preview_marks()
  return vim.api.nvim_buf_get_extmarks(0, rewrite.ns, 0, -1, {})
end
local SRC = { 'def f(xs):', '    out = []', '    for x in xs:', '        out.append(x)', '    return out' }
local SEL = { srow = 1, scol = 0, erow = 3, ecol = 21 }

-- a refused rewrite: the last canvas says why and is not drawn; the answer has no edit; nothing to accept
vim.api.nvim_buf_set_lines(0, 0, -1, false, SRC)
notes = {}
rewrite.rewrite(0, SEL)
eq(sent.method, 'diffusion/rewrite', 'rewrite sent')
eq({ sent.params.range, sent.params.instruction }, { range(1, 0, 3, 21), nil }, 'the selection, no instruction')
sent.on_canvas({ version = 3, text = 'out = [··', masks = { { 7, 9 } }, step = 1, done = false }, sent.req)
eq(#preview_marks(), 2, 'a canvas is previewed (removed range + virtual lines)')
sent.on_canvas({ version = 3, text = SRC[2], masks = {}, step = 2, done = true,
  reason = 'the answer is the same as the text it would replace' }, sent.req)
eq(preview_marks(), {}, 'a refused final canvas is not shown')
eq(rewrite.accept(), false, 'nothing to accept while the answer is pending')
eq(notes, { { 'diffusion-ls: the rewrite is still running', WARN } }, 'pending')
notes = {}
sent.on_result(nil, { version = 3, reason = 'the answer is the same as the text it would replace' }, sent.req)
eq(rewrite.has_preview(0), false, 'the preview is gone')
eq(preview_marks(), {}, 'nothing drawn')
eq(lines(), SRC, 'the buffer is as it was')
eq(rewrite.accept(), false, 'nothing to accept')
eq(notes, { { 'diffusion-ls: rewrite refused: the answer is the same as the text it would replace', WARN } },
  'the reason is shown')
-- the same with a JSON null edit (vim.NIL) and without a refused canvas before it
notes = {}
rewrite.rewrite(0, SEL)
sent.on_result(nil, { edit = vim.NIL, version = 3, reason = 'the answer would add parse errors: `out = [`' }, sent.req)
eq({ rewrite.has_preview(0), lines() }, { false, SRC }, 'null edit: no preview, buffer unchanged')
eq(notes, { { 'diffusion-ls: rewrite refused: the answer would add parse errors: `out = [`', WARN } }, 'null edit')
-- a selection the server cannot take (InvalidParams): said as it says it, a warning, not a failure
notes = {}
rewrite.rewrite(0, SEL)
sent.on_result({ code = -32602, message = 'the selection is 900 tokens, more than a rewrite may write (256, '
  .. 'maxTokens): select less' }, nil, sent.req)
eq({ rewrite.has_preview(0), lines() }, { false, SRC }, 'invalid: no preview, buffer unchanged')
eq(notes, { { 'diffusion-ls: cannot rewrite: the selection is 900 tokens, more than a rewrite may write (256, '
  .. 'maxTokens): select less', WARN } }, 'cannot rewrite')
-- an accepted rewrite still works
notes = {}
rewrite.rewrite(0, SEL)
local edit = { range = range(1, 4, 1, 12), newText = 'out = list()' }
sent.on_result(nil, { edit = edit, version = 3, reason = vim.NIL }, sent.req)
eq(rewrite.has_preview(0), true, 'a preview to accept')
eq(rewrite.accept(), true, 'accepted')
eq(lines()[2], '    out = list()', 'applied')
eq(notes, {}, 'nothing to say')
-- a code action's rewrite (the server's diffusion.rewrite command) runs here with the preview, not on the server,
-- which would apply its edit at once
vim.api.nvim_buf_set_lines(0, 0, -1, false, SRC)
if vim.api.nvim_buf_get_name(0) == '' then
  vim.api.nvim_buf_set_name(0, vim.fn.tempname() .. '.py')
end
rewrite.setup()
eq(vim.lsp.commands['diffusion.rewrite'], rewrite.code_action, 'registered for code actions')
local get_client_by_id = vim.lsp.get_client_by_id
vim.lsp.get_client_by_id = function(id)
  return id == fake.id and fake or nil
end
sent = nil
local action = { title = 'Diffusion: refine selection', command = 'diffusion.rewrite', arguments = {
  { textDocument = { uri = vim.uri_from_bufnr(vim.api.nvim_get_current_buf()) }, range = range(1, 4, 1, 12),
    mode = 'refine' } } }
vim.lsp.commands['diffusion.rewrite'](action, { client_id = fake.id, bufnr = 0 })
eq({ sent.method, sent.params.range, sent.params.mode }, { 'diffusion/rewrite', range(1, 4, 1, 12), 'refine' },
  'the action\'s range and mode')
sent.on_result(nil, { edit = { range = range(1, 4, 1, 12), newText = 'out = list()' }, version = 3 }, sent.req)
eq({ rewrite.has_preview(0), lines() }, { true, SRC }, 'previewed: nothing applied before accept')
rewrite.reject()
vim.lsp.get_client_by_id = get_client_by_id

-- instructions: a model that does not follow them is not asked for one; one typed anyway is dropped, said once
vim.api.nvim_buf_set_lines(0, 0, -1, false, SRC)
local asked = {}
vim.ui.input = function(opts, cb)
  asked[#asked + 1] = opts.prompt
  cb(asked.answer)
end
notes = {}
sent = nil
rewrite.rewrite(0, SEL, 'use a comprehension')
eq(sent.params.instruction, nil, 'the instruction is not sent')
eq(notes, { { 'diffusion-ls: the tiny-17m model does not follow instructions; the instruction is ignored', WARN } },
  'said plainly')
rewrite.reject()
rewrite.rewrite(0, SEL, 'again')
eq(#notes, 1, 'said once')
eq(#asked, 0, 'never prompted')
rewrite.reject()
-- a model that follows instructions: prompted when none was given; an empty answer is none; <Esc> cancels
fake_status = { backend = 'transformers', model = 'chat', capabilities = { instructions = true } }
asked.answer = 'use a comprehension'
sent = nil
rewrite.rewrite(0, SEL)
eq(asked, { 'Rewrite instruction (empty: none): ', answer = 'use a comprehension' }, 'prompted')
eq(sent.params.instruction, 'use a comprehension', 'the answer is the instruction')
rewrite.reject()
asked.answer = ''
rewrite.rewrite(0, SEL)
eq(sent.params.instruction, nil, 'an empty answer: no instruction')
rewrite.reject()
asked.answer, sent = nil, nil
rewrite.rewrite(0, SEL)
eq(sent, nil, 'cancelled prompt: no rewrite')
asked = {}
rewrite.rewrite(0, SEL, 'shorter')
eq({ #asked, sent.params.instruction }, { 0, 'shorter' }, 'given: not prompted, sent')
rewrite.reject()
-- a server that does not report capabilities: not prompted, the instruction passed on
fake_status = { backend = 'embedded' }
notes = {}
rewrite.rewrite(0, SEL, 'shorter')
eq({ #asked, sent.params.instruction, notes }, { 0, 'shorter', {} }, 'unknown capabilities')
rewrite.reject()

-- fill: the `edits` are previewed, each placeholder marked removed with its fill below it; nothing changes before
-- accept, which applies them all as one undo step; the kept placeholders are reported with their reasons and lines
local FILL = { 'def a():', '    ...', '', 'def b():', '    pass', '', 'def c():', '    ...' }
local KEYS = '<leader>da accept, <leader>dx reject'
vim.api.nvim_buf_set_lines(0, 0, -1, false, FILL)
notes = {}
rewrite.fill(0)
eq({ sent.method, sent.params.ranges }, { 'diffusion/infill', nil }, 'fill the buffer')
eq(rewrite.accept(), false, 'nothing to accept while the fill runs')
eq(notes, { { 'diffusion-ls: the fill is still running', WARN } }, 'fill pending')
notes = {}
sent.on_result(nil, {
  version = 3,
  edits = { { range = range(1, 4, 1, 7), newText = 'return 1' }, { range = range(4, 4, 4, 8), newText = 'return 2' } },
  kept = {
    { range = range(7, 4, 7, 7), reason = 'the answer is the same as the text it would replace' },
  },
}, sent.req)
eq(lines(), FILL, 'previewed: nothing applied before accept')
eq(rewrite.has_preview(0), true, 'a fill to accept')
local drawn = {}
for _, m in ipairs(vim.api.nvim_buf_get_extmarks(0, rewrite.ns, 0, -1, { details = true })) do
  local d = m[4]
  if d.hl_group == 'DiffusionLsRemoved' then
    drawn[#drawn + 1] = { 'removed', m[2], m[3], d.end_row, d.end_col }
  else
    drawn[#drawn + 1] = { d.virt_lines[1][1][1], d.virt_text[1][1] }
  end
end
eq(drawn, {
  { '    return 1', ' fill 1 of 2: ' .. KEYS .. ' (all of them)' }, { 'removed', 1, 4, 1, 7 },
  { '    return 2', ' fill 2 of 2: ' .. KEYS .. ' (all of them)' }, { 'removed', 4, 4, 4, 8 },
}, 'each placeholder removed, its line as it would become below it')
eq(notes, { { 'diffusion-ls: filled 2 of 3 placeholders (lines 2, 5): ' .. KEYS .. '; kept 1: the answer is the same as the text '
  .. 'it would replace (line 8)', WARN } }, 'filled 2 of 3')
local function kept_marks()
  return vim.tbl_map(function(d)
    return { d.lnum, d.col, d.end_col, d.message }
  end, vim.diagnostic.get(0, { namespace = rewrite.kept_ns }))
end
eq(kept_marks(), { { 7, 4, 7, 'placeholder kept: the answer is the same as the text it would replace' } },
  'the kept placeholder is marked in place, with why')
eq(rewrite.accept(), true, 'accepted')
eq(kept_marks(), {}, 'the buffer changed: the marks are gone')
eq(lines(), { 'def a():', '    return 1', '', 'def b():', '    return 2', '', 'def c():', '    ...' }, 'only the edits')
eq(preview_marks(), {}, 'the preview is gone')
vim.cmd('undo')
eq(lines(), FILL, 'one undo step takes the whole fill back')
-- rejected: nothing changes; typing drops the preview too
notes = {}
rewrite.fill(0)
sent.on_result(nil, { version = 3, edits = { { range = range(1, 4, 1, 7), newText = 'return 1' } }, kept = {} },
  sent.req)
eq(rewrite.reject(), true, 'rejected')
eq({ lines(), preview_marks(), rewrite.has_preview(0) }, { FILL, {}, false }, 'rejected: the buffer as it was')
-- stopped while it runs: the request is cancelled and its late answer ignored
rewrite.fill(0)
local running = sent
eq(rewrite.reject(), true, 'stopped')
eq(running.req.cancelled, true, 'the fill request is cancelled')
running.on_result(nil, { version = 3, edits = { { range = range(1, 4, 1, 7), newText = 'return 1' } } }, running.req)
eq({ lines(), preview_marks(), rewrite.has_preview(0) }, { FILL, {}, false }, 'a late answer after stop: nothing')
vim.api.nvim_buf_set_lines(0, 0, -1, false, FILL)
notes = {}
rewrite.fill(0)
sent.on_result(nil, { version = 3, edits = {}, kept = {
  { range = range(1, 4, 1, 7), reason = 'the answer was empty' },
  { range = range(4, 4, 4, 8), reason = 'the answer would add parse errors: `x = (`' },
  { range = range(7, 4, 7, 7), reason = 'the answer was empty' },
} }, sent.req)
eq({ lines(), rewrite.has_preview(0) }, { FILL, false }, 'none filled: nothing changes, nothing to accept')
eq(#kept_marks(), 3, 'none filled: every kept placeholder is marked all the same')
rewrite.fill(0)
eq(kept_marks(), {}, 'the next fill starts without them')
eq(notes, { { 'diffusion-ls: filled none of 3 placeholders; kept 3: the answer was empty (lines 2, 8); '
  .. 'the answer would add parse errors: `x = (` (line 5)', WARN } }, 'none filled')
do -- the commonest reason first, at most 6 line numbers each
  local many = { { range = range(0, 0, 0, 3), reason = 'too far' } }
  for i = 1, 9 do
    many[#many + 1] = { range = range(i * 10, 0, i * 10, 3), reason = 'past the first 32' }
  end
  eq(rewrite.fill_message({}, many), 'diffusion-ls: filled none of 10 placeholders; kept 10: past the first 32 (lines '
    .. '11, 21, 31, 41, 51, 61 and 3 more); too far (line 1)', 'ranked and capped')
end
notes = {}
rewrite.fill(0)
sent.on_result(nil, { version = 3, edits = { { range = range(1, 4, 1, 7), newText = 'return 2' } } }, sent.req)
eq(rewrite.accept(), true, 'an answer without kept (older server)')
eq(lines()[2], '    return 2', 'applied on accept')
eq(notes, { { 'diffusion-ls: filled 1 placeholder (line 2): ' .. KEYS, INFO } }, 'all filled')
notes = {}
rewrite.fill(0)
sent.on_result(nil, { version = 3, edits = {}, kept = {} }, sent.req)
eq(notes, { { 'diffusion-ls: no placeholder to fill', INFO } }, 'no placeholder')

-- :DiffusionToggle! switches completion as you type in one buffer, :DiffusionToggle everywhere (a buffer's own switch
-- gives way to it)
notes = {}
local other = vim.api.nvim_create_buf(true, false)
eq({ ghost.auto(0), ghost.auto(other) }, { true, true }, 'on by default')
eq(ghost.toggle(true), false, 'off in this buffer')
eq({ ghost.auto(0), ghost.auto(other) }, { false, true }, 'only this buffer')
eq(ghost.toggle(), true, 'on everywhere')
eq({ ghost.auto(0), ghost.auto(other) }, { true, true }, 'the buffer\'s own switch gave way')
eq(ghost.toggle(), false, 'off everywhere')
eq({ ghost.auto(0), ghost.auto(other), config.get().auto_trigger }, { false, false, false }, 'everywhere')
eq(ghost.toggle(true), true, 'on in this buffer, off elsewhere')
eq({ ghost.auto(0), ghost.auto(other) }, { true, false }, 'this buffer only')
eq(notes, {
  { 'diffusion-ls: completion as you type off in this buffer; <M-\\> still asks', INFO },
  { 'diffusion-ls: completion as you type on everywhere', INFO },
  { 'diffusion-ls: completion as you type off everywhere; <M-\\> still asks', INFO },
  { 'diffusion-ls: completion as you type on in this buffer', INFO },
}, 'said each time')
vim.b.diffusion_ls_auto_trigger = nil
config.get().auto_trigger = true
vim.api.nvim_buf_delete(other, { force = true })
eq(vim.fn.exists(':DiffusionToggle'), 2, 'the command')

-- stream 'asked' (the default): as you type only the result is drawn, an asked-for completion streams
eq(config.get().stream, 'asked', 'the default')
vim.api.nvim_buf_set_lines(0, 0, -1, false, { 'x = )', 'y = 1' })
vim.api.nvim_win_set_cursor(0, { 1, 4 })
fake.attached_buffers[vim.api.nvim_get_current_buf()] = true
ghost.trigger(nil, true)
sent.on_canvas({ version = 3, range = range(0, 4, 0, 4), text = 'f··', masks = { { 1, 3 } }, step = 1 }, sent.req)
eq(marks(), {}, 'as you type: no canvas drawn')
sent.on_result(nil, { items = { { insertText = 'foo', range = range(0, 4, 0, 4) } } }, sent.req)
eq(marks(), { { 0, 4, { { 'foo', 'DiffusionLsGhost' } } } }, 'as you type: the result drawn')
ghost.dismiss()
config.get().stream = true
ghost.trigger(nil, true)
sent.on_canvas({ version = 3, range = range(0, 4, 0, 4), text = 'f··', masks = { { 1, 3 } }, step = 1 }, sent.req)
eq(#marks(), 1, 'stream = true: as you type, the canvas drawn')
ghost.dismiss()
config.get().stream = 'asked'
fake.attached_buffers[vim.api.nvim_get_current_buf()] = nil

-- ghost text: a refused final canvas clears the canvas instead of becoming the ghost text
vim.api.nvim_buf_set_lines(0, 0, -1, false, { 'x = )', 'y = 1' }) -- (normal mode: the cursor stays on a character)
vim.api.nvim_win_set_cursor(0, { 1, 4 })
ghost.trigger()
sent.on_canvas({ version = 3, range = range(0, 4, 0, 4), text = 'f··', masks = { { 1, 3 } }, step = 1 }, sent.req)
eq(#marks(), 1, 'the canvas is drawn')
sent.on_canvas({ version = 3, range = range(0, 4, 0, 4), text = '', masks = {}, step = 2, done = true,
  reason = 'the answer was empty' }, sent.req)
eq({ marks(), ghost.get() }, { { { 0, 0, { { '  no suggestion: the answer was empty', 'DiffusionLsHint' } } } }, nil },
  'refused: the canvas cleared, why at the end of the line (Insert mode draws over the command line)')
eq(sent.req.cancelled, true, 'and the request let go')
eq(notes[#notes], { 'diffusion-ls: no suggestion: the answer was empty', INFO }, 'asked for: told why')
vim.api.nvim_exec_autocmds('CursorMoved', { buffer = 0 })
eq(#marks(), 1, 'the reason stays while the cursor does')
vim.api.nvim_win_set_cursor(0, { 2, 0 })
vim.api.nvim_exec_autocmds('CursorMoved', { buffer = 0 })
eq(marks(), {}, 'and goes when it moves')
-- a line wider than the window (minified code): its end is off screen, so the reason goes at the cursor
local long = 'x = ' .. string.rep('a', vim.api.nvim_win_get_width(0) + 10)
vim.api.nvim_buf_set_lines(0, 0, 1, false, { long })
vim.api.nvim_win_set_cursor(0, { 1, 4 })
ghost.trigger()
sent.on_canvas({ version = 3, range = range(0, 4, 0, 4), text = '', masks = {}, step = 2, done = true,
  reason = 'the answer was empty' }, sent.req)
eq(marks(), { { 0, 4, { { ' no suggestion: the answer was empty ', 'DiffusionLsHint' } } } },
  'a long line: the reason at the cursor')
ghost.dismiss()
vim.api.nvim_buf_set_lines(0, 0, 1, false, { 'x = )' })
vim.api.nvim_win_set_cursor(0, { 1, 4 })
notes = {}
fake.attached_buffers[vim.api.nvim_get_current_buf()] = true
local asked_req = sent.req
ghost.trigger(nil, true) -- as you type: refused quietly
eq({ sent.req ~= asked_req, sent.params.context.triggerKind }, { true, 2 }, 'an automatic request sent')
sent.on_canvas({ version = 3, range = range(0, 4, 0, 4), text = '', masks = {}, step = 2, done = true,
  reason = 'the answer was empty' }, sent.req)
eq({ marks(), notes }, { {}, {} }, 'as you type: cleared, nothing said')
ghost.trigger()
sent.on_result({ code = -32603, message = 'boom' }, nil, sent.req)
eq(notes, { { 'diffusion-ls: completion failed: boom', WARN } }, 'asked for and failed: said')
notes = {}
ghost.trigger()
sent.on_result({ code = -32800, message = 'cancelled' }, nil, sent.req)
eq(notes, {}, 'cancelled: nothing said')
fake.attached_buffers[vim.api.nvim_get_current_buf()] = nil

-- statusline(): what a completion does now or did last, asking the server nothing
local dls = require('diffusion_ls')
vim.api.nvim_buf_set_lines(0, 0, -1, false, { 'x = )', 'y = 1' })
vim.api.nvim_win_set_cursor(0, { 1, 4 })
ghost.trigger()
eq(dls.statusline(), 'diffusion-ls …', 'a completion running')
sent.on_result(nil, { items = { { insertText = 'foo', range = range(0, 4, 0, 4) } } }, sent.req)
eq(dls.statusline():match('^diffusion%-ls %d+ ms$') ~= nil, true, 'answered: its time (' .. dls.statusline() .. ')')
ghost.trigger()
sent.on_canvas({ version = 3, range = range(0, 4, 0, 4), text = '', masks = {}, step = 2, done = true,
  reason = 'the answer was empty' }, sent.req)
eq(dls.statusline(), 'diffusion-ls no suggestion', 'refused')
fake.attached_buffers[vim.api.nvim_get_current_buf()] = true
ghost.trigger(nil, true)
sent.on_result(nil, { items = {} }, sent.req)
eq(dls.statusline(), 'diffusion-ls', 'as you type, nothing to show: no figure (a weak language, a word half typed)')
ghost.trigger(nil, true)
sent.on_result({ code = -32803, message = 'could not load the model' }, nil, sent.req)
eq(dls.statusline(), 'diffusion-ls error', 'as you type, a failed request is shown: no model loaded')
fake.attached_buffers[vim.api.nvim_get_current_buf()] = nil
ghost.trigger()
ghost.dismiss()
eq(dls.statusline(), 'diffusion-ls', 'let go before its answer: nothing to show')
vim.b.diffusion_ls_auto_trigger = false
eq(dls.statusline(), 'diffusion-ls off', 'completion as you type off in the buffer')
vim.b.diffusion_ls_auto_trigger = nil
-- a language the model is weak at (its status, fetched when the client started): says completions wait to be asked
local status_mod = require('diffusion_ls.status')
local ft = vim.bo.filetype
vim.bo.filetype = 'typescript'
fake_status.languages, fake_status.weakLanguages = { typescript = 'weak', python = 'good' }, 'explicit'
status_mod.fetch(fake, function() end)
eq(dls.statusline(), 'diffusion-ls when asked', 'a weak language, completed only when asked')
ghost.trigger()
sent.on_result(nil, { items = { { insertText = 'foo', range = range(0, 4, 0, 4) } } }, sent.req)
eq(dls.statusline():match('^diffusion%-ls when asked, %d+ ms$') ~= nil, true, 'asked: ' .. dls.statusline())
fake_status.weakLanguages = 'off'
status_mod.fetch(fake, function() end)
eq(dls.statusline():match('^diffusion%-ls off here') ~= nil, true, 'weakLanguages off: ' .. dls.statusline())
fake_status.weakLanguages = 'automatic'
status_mod.fetch(fake, function() end)
eq(dls.statusline():match('^diffusion%-ls %d+ ms$') ~= nil, true, 'automatic: as any language')
vim.bo.filetype = ft
fake_status.languages, fake_status.weakLanguages = nil, nil
status_mod.fetch(fake, function() end)
-- read while the model loads, then again until it says loaded (its ratings come with it), and not after
local asked, request = 0, fake.request
fake.request = function(self, method, params, handler)
  asked = asked + 1
  return request(self, method, params, handler)
end
fake_status.loaded = false
status_mod.follow(fake, 10, 50)
vim.wait(100, function() return asked >= 3 end, 5)
fake_status.loaded = true
vim.wait(100, function() return false end, 5)
local settled = asked
vim.wait(60, function() return false end, 5)
eq({ asked >= 3, asked, status_mod.last(fake).loaded }, { true, settled, true }, 'status followed until loaded')
fake.request = request
fake.initialized = false
eq(dls.statusline(), 'diffusion-ls starting', 'the server has not answered initialize')
fake.initialized = true
local get_client = lsp.get_client
lsp.get_client = function() end
eq(dls.statusline(), '', 'no diffusion-ls client in the buffer')
lsp.get_client = get_client
notes = {}

-- :DiffusionStatus report
local st = require('diffusion_ls.status')
config.set({})
eq(st.lines({
  backend = 'embedded', model = 'diffusion-ls-code-17m-r4', device = 'cpu', memoryFormat = 'bfloat16', loaded = true,
  lastLatencyMs = 412.4,
  tokensPerForward = 2.3456, nfe = 7, minConfidence = 0.618,
  capabilities = { instructions = false, streams = true, maskToken = true, nativeInfill = false },
  languages = { python = 'good', go = 'weak' },
}, 'python'), {
  'backend       embedded',
  'model         diffusion-ls-code-17m-r4',
  'device        cpu (bfloat16)',
  'loaded        yes',
  'last fill     412 ms, 2.35 tokens/forward, 7 forwards, least sure token 0.62',
  'capabilities  instructions no, streams yes, mask token yes, native infill no',
  'this buffer   python: good',
}, 'status lines')
eq(st.lines({ backend = 'embedded', lastLatencyMs = 240, nfe = 7, lastRefused = 'the model was unsure of it' },
  'python')[5], 'last fill     240 ms, 7 forwards; refused: the model was unsure of it', 'a refused last fill says why')
local loading = st.lines({ backend = 'transformers', loading = true, languages = {} }, 'go')
eq({ loading[2], loading[4], loading[5], loading[6], loading[7] }, {
  'model         ?', 'loaded        loading...', 'last fill     none yet', 'capabilities  known once the model is loaded',
  'this buffer   go: not rated by this model',
}, 'status while loading')
local failed = st.lines({ backend = 'embedded', loaded = false, error = 'no such file' }, 'markdown')
eq({ failed[4], failed[7] }, { 'loaded        no: no such file', 'this buffer   markdown: not in the plugin\'s filetypes' },
  'status with an error')
eq(st.lines({ backend = 'embedded' }, '')[7], 'this buffer   no filetype', 'no filetype')
-- a weak language: whether it completes as you type is the weakLanguages setting's, and the line says so
local function weak(mode)
  return st.lines({ backend = 'embedded', languages = { go = 'weak' }, weakLanguages = mode }, 'go')[7]
end
eq({ weak('explicit'), weak('off'), weak('automatic') }, {
  'this buffer   go: weak, completes only when asked (weakLanguages)',
  'this buffer   go: weak, never completes (weakLanguages)',
  'this buffer   go: weak',
}, 'weak language lines')
eq(st.lines({ backend = 'embedded', loaded = true }, 'python')[6], 'capabilities  not reported by the server', 'old server')
-- repository context on: a line says what the index holds; off: a line says so, and why when the server says
local function repo_line(repo)
  local lines = st.lines({ backend = 'embedded', loaded = true, repo = repo }, 'python')
  return #lines == 8 and lines[8] or nil
end
eq(repo_line({ budget = 256, roots = { '/src/h11' }, indexing = false, indexedFiles = 11, totalFiles = 11 }),
  'repo context  256 tokens, 11 files indexed', 'repo index done')
eq(repo_line({ budget = 256, roots = { '/src/h11' }, indexing = true, indexedFiles = 3, totalFiles = 11 }),
  'repo context  256 tokens, indexing: 3 of 11 files', 'repo index in progress')
eq(repo_line({ budget = 256, roots = {}, indexing = false, indexedFiles = 0, totalFiles = 0 }),
  'repo context  256 tokens, no workspace folder to index', 'repo context without a root')
eq(repo_line({ budget = 0, roots = { '/src/h11' }, indexing = false, indexedFiles = 0, off = 'repoContextBudget is 0' }),
  'repo context  off: repoContextBudget is 0', 'repo context off, and why')
eq(repo_line({ budget = 0, roots = { '/src/h11' }, indexing = false, indexedFiles = 0 }), 'repo context  off',
  'repo context off, a server that does not say why')
eq(repo_line(nil), nil, 'older server')
eq(repo_line({ budget = 256, roots = { '/src/click' }, indexing = false, indexedFiles = 24, totalFiles = 24,
  files = 22 }), 'repo context  256 tokens, 22 files indexed, 2 skipped', 'skipped files (binary, too large)')
eq(repo_line({ budget = 256, roots = { '/src/click' }, indexing = false, indexedFiles = 24, totalFiles = 24,
  files = 25 }), 'repo context  256 tokens, 25 files indexed', 'files added since the walk')
eq(repo_line({ budget = 256, roots = { '/src/one' }, indexing = false, indexedFiles = 1, totalFiles = 1, files = 1 }),
  'repo context  256 tokens, 1 file indexed', 'one file: singular')
-- the files the index left out, named with why (the first three)
local function skipped_line(repo)
  local lines = st.lines({ backend = 'embedded', loaded = true, repo = repo }, 'python')
  return lines[#lines]
end
eq(skipped_line({ budget = 256, indexing = false, indexedFiles = 24, totalFiles = 24, files = 22,
  skipped = { { path = 'data/blob.py', why = 'binary' }, { path = 'big.py', why = 'larger than 256 KB' } } }),
  'skipped       data/blob.py (binary), big.py (larger than 256 KB)', 'skipped files named')
eq(skipped_line({ budget = 256, indexing = false, indexedFiles = 30, totalFiles = 30, files = 24,
  skipped = { { path = 'a.py', why = 'binary' }, { path = 'b.py', why = 'binary' }, { path = 'c.py', why = 'binary' },
    { path = 'd.py', why = 'binary' } } }),
  'skipped       a.py (binary), b.py (binary), c.py (binary), +3 more', 'more skipped than shown')
eq(skipped_line({ budget = 256, indexing = false, indexedFiles = 3, totalFiles = 3, files = 3, skipped = {} }),
  'repo context  256 tokens, 3 files indexed', 'nothing skipped: no line')
-- what the last fill was given of the repository
local repo_on = { budget = 256, roots = { '/src/click' }, indexing = false, indexedFiles = 3, totalFiles = 3, files = 3 }
local function context(s)
  s.backend, s.loaded, s.repo = 'embedded', true, s.repo or repo_on
  local lines = st.lines(s, 'python')
  return #lines == 9 and lines[9] or nil
end
eq(context({ lastLatencyMs = 120, repoContext = { tokens = 190, chunks = {
  { path = 'click/utils.py', kind = 'definition', line = 239, text = 'def echo(' },
  { path = 'click/termui.py', kind = 'snippet', line = 8, text = 'import sys' },
  { path = 'click/_compat.py', kind = 'definition', line = 539, text = 'def isatty(stream):' },
  { path = 'click/utils.py', kind = 'definition', line = 51, text = 'def make_str(value):' },
  { path = 'click/core.py', kind = 'recent', line = 10, text = 'x = 1' },
} } }), 'last context  190 tokens: 3 definitions, 1 snippet, 1 recent edit from click/utils.py, click/termui.py, '
  .. 'click/_compat.py, +1 more', 'the last fill\'s repository context')
eq(context({ lastLatencyMs = 120, repoContext = { tokens = 0, chunks = {} } }), 'last context  nothing from the workspace',
  'nothing matched')
eq(context({ lastLatencyMs = 120, repoContext = vim.NIL }), 'last context  none', 'a fill without repository context')
eq(context({}), nil, 'no fill yet')
eq(context({ lastLatencyMs = 120, repo = { budget = 0 }, repoContext = vim.NIL }), nil, 'repository context off')

-- a message longer than the command line is shortened to fit it (no "Press ENTER" prompt); :DiffusionStatus has it whole
vim.o.columns = 80
notes = {}
local long = 'diffusion-ls: rewrite refused: the answer would add parse errors: `' .. string.rep('xé', 60) .. '`'
lsp.say('diffusion-ls: short', WARN)
eq(notes[#notes], { 'diffusion-ls: short', WARN }, 'a short message as it is')
eq(lsp.last_message, nil, 'nothing kept when nothing was cut')
lsp.say(long, WARN)
local shown = notes[#notes][1]
eq(vim.fn.strdisplaywidth(shown) < vim.v.echospace and vim.endswith(shown, '… (all: :DiffusionStatus)'), true,
  'shortened to fit, saying where the rest is: ' .. shown)
eq(vim.startswith(long, shown:sub(1, -#'… (all: :DiffusionStatus)' - 1)), true, 'its beginning')
eq(lsp.last_message, long, 'kept whole')
eq(st.lines({ backend = 'embedded' }, 'python')[8], 'last message  0 s ago: ' .. long, 'and shown by :DiffusionStatus')
lsp.last_message_ms = lsp.last_message_ms - 90000
eq(st.lines({ backend = 'embedded' }, 'python')[8], 'last message  90 s ago: ' .. long, 'with how long ago')
lsp.say('one\ntwo', INFO)
eq(notes[#notes], { 'one; two', INFO }, 'one line')
eq(lsp.last_message, nil, 'a later message that fits: no stale line in :DiffusionStatus')

-- :DiffusionStatus with no server: one that started and ended says so (a trial's `cmd` lacked `serve`)
local get_client, starting = lsp.get_client, lsp.starting
lsp.get_client, lsp.starting = function() return nil end, function() return false end
vim.o.columns = 200
lsp.exited = nil
st.report()
eq(notes[#notes], { 'diffusion-ls: not running (it starts with a buffer of a configured filetype)', WARN },
  'never started')
lsp.exited = { code = 0, signal = 0, cmd = 'diffusion-ls', ran = false }
st.report()
eq(notes[#notes], { 'diffusion-ls: not running: `diffusion-ls` exited (code 0); check `cmd` and :checkhealth '
  .. 'diffusion_ls', WARN }, 'started and ended')
lsp.exited = { code = 0, signal = 0, cmd = 'diffusion-ls serve', ran = true }
st.report()
eq(notes[#notes], { 'diffusion-ls: not running: the server stopped (code 0); it starts again with a buffer of a '
  .. 'configured filetype (:edit)', WARN }, 'ran, then stopped')
lsp.get_client, lsp.starting = get_client, starting

vim.cmd('qa!')
