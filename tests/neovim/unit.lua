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

-- config validation: bad values are refused, the previous options stay
eq(config.set({ debounce_ms = -1 }), false, 'negative debounce refused')
eq(config.set({ keymaps = { nope = 'x' } }), false, 'unknown keymap refused')
eq(config.set({ rewrite_mode = 'refine', keymaps = { accept = false } }), true, 'valid options')
eq(config.get().keymaps.accept, false, 'keymap disabled')
eq(config.get().keymaps.accept_word, '<C-Right>', 'other keymaps keep their defaults')
config.set({})

-- a stubbed transport: requests are captured, canvases and results are fed by hand
local fake = { id = 1, offset_encoding = 'utf-16', initialized = true, attached_buffers = {} }
function fake:is_stopped()
  return false
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

vim.cmd('qa!')
