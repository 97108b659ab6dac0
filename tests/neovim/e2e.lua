-- Drives a real headless Neovim with the plugin against the real server, typing real keys, and records what
-- happened (notifications, extmarks, buffer text) into a JSON report that test_neovim.py asserts on.
--
-- The shipped model is an untrained placeholder for now: its fills are noise, and the server's post-processing drops
-- a fill that breaks the syntax. So the cases type into comments (where any text is valid) and assert consistency
-- (what the server sent is what is drawn and what lands in the buffer), never a particular completion.
--
-- Each case is a coroutine step list: keys go in with nvim_input and are processed by Neovim's own input loop
-- (so mappings, TextChangedI, InsertLeave... are the real ones) while the case waits on a condition.
--
-- Environment: DIFFUSION_LS_REPORT (output JSON), DIFFUSION_LS_CMD (server command, JSON list), DIFFUSION_LS_DIR
-- (a scratch directory for the test files), DIFFUSION_LS_SETTINGS (initializationOptions, JSON).
-- DIFFUSION_LS_PLAIN=1: a plain `setup({})` instead (a `diffusion-ls` command on PATH, the server's defaults), for the
-- cases about starting up as a user does.

local report_path = assert(os.getenv('DIFFUSION_LS_REPORT'), 'DIFFUSION_LS_REPORT')
local dir = assert(os.getenv('DIFFUSION_LS_DIR'), 'DIFFUSION_LS_DIR')
local TIMEOUT_MS = tonumber(os.getenv('DIFFUSION_LS_TIMEOUT_MS') or '') or 60000
local PLAIN = os.getenv('DIFFUSION_LS_PLAIN') == '1'

-- The cases assert whole messages: a screen wide enough that the plugin need not shorten them to fit (lsp.say).
vim.o.columns = 2000

-- Every notification the plugin (or Neovim) makes, from the start.
local notifications = {}
local notify = vim.notify
vim.notify = function(msg, level, opts)
  notifications[#notifications + 1] = { msg = msg, level = level or vim.log.levels.INFO }
  return notify(msg, level, opts)
end

if PLAIN then
  require('diffusion_ls').setup({})
else
  require('diffusion_ls').setup({
    cmd = vim.json.decode((assert(os.getenv('DIFFUSION_LS_CMD'), 'DIFFUSION_LS_CMD'))),
    server_settings = vim.json.decode(os.getenv('DIFFUSION_LS_SETTINGS') or '{}'),
    debounce_ms = 50,
    stream = true, -- the cases follow every canvas of completions as you type (the default draws asked-for ones)
  })
end

local report = { cases = {}, order = {} }
local case ---@type table the current case's record

local function finish()
  local f = assert(io.open(report_path, 'w'))
  f:write(vim.json.encode(report))
  f:close()
  for _, client in ipairs(vim.lsp.get_clients()) do
    client:stop(true)
  end
  vim.cmd('qa!')
end

local function now_ms()
  return vim.uv.hrtime() / 1e6
end

--- Wait (yielding to Neovim's loop) until cond() returns a truthy value; error after the timeout.
local function await(what, cond, timeout_ms)
  local me = coroutine.running()
  local deadline = now_ms() + (timeout_ms or TIMEOUT_MS)
  local timer = assert(vim.uv.new_timer())
  timer:start(0, 15, vim.schedule_wrap(function()
    if timer:is_closing() then
      return
    end
    local ok, res = pcall(cond)
    if not ok or res or now_ms() > deadline then
      timer:close()
      local rok, rerr = coroutine.resume(me, ok and res or nil, not ok and res or nil)
      if not rok then
        report.fatal = tostring(rerr)
        finish()
      end
    end
  end))
  local res, err = coroutine.yield()
  if err then
    error(('failed waiting for %s: %s'):format(what, err))
  elseif not res then
    error(('timed out after %d ms waiting for %s'):format(timeout_ms or TIMEOUT_MS, what))
  end
  return res
end

local function mode()
  return vim.api.nvim_get_mode().mode
end

local function lines(bufnr)
  return vim.api.nvim_buf_get_lines(bufnr or 0, 0, -1, false)
end

local function cursor()
  local c = vim.api.nvim_win_get_cursor(0)
  return { c[1] - 1, c[2] }
end

local function tick(bufnr)
  return vim.api.nvim_buf_get_changedtick(bufnr or 0)
end

--- Extmarks of a namespace with what they draw.
local function marks(ns, bufnr)
  local out = {}
  for _, m in ipairs(vim.api.nvim_buf_get_extmarks(bufnr or 0, ns, 0, -1, { details = true })) do
    local d = m[4]
    out[#out + 1] = {
      row = m[2], col = m[3], end_row = d.end_row, end_col = d.end_col, hl_group = d.hl_group,
      virt_text = d.virt_text, virt_text_pos = d.virt_text_pos, virt_lines = d.virt_lines,
    }
  end
  return out
end

local ghost = require('diffusion_ls.ghost')
local rewrite = require('diffusion_ls.rewrite')
local lsp = require('diffusion_ls.lsp')

-- The plugin's requests with their params, as sent (the real request goes on).
local sent = {}
local request = lsp.request
lsp.request = function(client, bufnr, method, params, ...)
  sent[#sent + 1] = { method = method, params = vim.deepcopy(params) }
  return request(client, bufnr, method, params, ...)
end

-- Everything the client receives and draws, in order.
local events = {}
local function record(kind, data)
  data.kind, data.t, data.tick, data.cursor, data.mode = kind, now_ms(), tick(), cursor(), mode()
  events[#events + 1] = data
  return data
end

local function events_since(n, kind, pred)
  local out = {}
  for i = n + 1, #events do
    if events[i].kind == kind and (not pred or pred(events[i])) then
      out[#out + 1] = events[i]
    end
  end
  return out
end

vim.api.nvim_create_autocmd('User', {
  pattern = { 'DiffusionLsCanvas', 'DiffusionLsResult' },
  callback = function(args)
    record(args.match, { id = args.data.id, step = args.data.step, done = args.data.done, text = args.data.text,
      masks = args.data.masks, item = args.data.item, marks = marks(ghost.ns, args.data.bufnr) })
  end,
})
vim.api.nvim_create_autocmd('User', {
  pattern = { 'DiffusionLsRewriteCanvas', 'DiffusionLsRewriteResult', 'DiffusionLsRewriteRefused',
    'DiffusionLsFillResult' },
  callback = function(args)
    record(args.match, { id = args.data.id, step = args.data.step, done = args.data.done, text = args.data.text,
      masks = args.data.masks, edit = args.data.edit, edits = args.data.edits, kept = args.data.kept,
      reason = args.data.reason, has_preview = rewrite.has_preview(args.data.bufnr),
      marks = marks(rewrite.ns, args.data.bufnr),
      lines = lines(args.data.bufnr) })
  end,
})
vim.api.nvim_create_autocmd('LspRequest', {
  callback = function(args)
    local r = args.data.request
    record('LspRequest', { id = args.data.request_id, type = r.type, method = r.method })
  end,
})

local function wrap_canvas_handler(client)
  local orig = client.handlers['diffusion/canvas']
  client.handlers['diffusion/canvas'] = function(err, params, ctx)
    record('notification', { params = params })
    return orig(err, params, ctx)
  end
end

--- Open a scratch Python file with these lines; typing is literal (no auto-indent).
local function open(name, text)
  vim.cmd('silent! %bwipeout!')
  vim.cmd.edit(vim.fs.joinpath(dir, name))
  vim.bo.autoindent, vim.bo.smartindent, vim.bo.indentexpr, vim.bo.textwidth = false, false, '', 0
  vim.api.nvim_buf_set_lines(0, 0, -1, false, text)
  local bufnr = vim.api.nvim_get_current_buf()
  local client = assert(lsp.attach(bufnr), 'no client')
  await('the server to attach', function()
    assert(not client:is_stopped(), 'the server exited (see the LSP log)')
    return client.initialized and client.attached_buffers[bufnr]
  end)
  if not client._test_wrapped then
    wrap_canvas_handler(client)
    client._test_wrapped = true
  end
  return bufnr, client
end

--- diffusion/status, polled until the model is loaded (or failed to load).
local function wait_loaded(client)
  local pending, last = false, nil
  return await('the model to load', function()
    if not pending then
      pending = true
      client:request('diffusion/status', vim.empty_dict(), function(err, result)
        pending = false
        last = err and { error = err.message } or result
      end)
    end
    return last and not last.loading and last
  end)
end

--- The floating windows open now.
local function floats()
  return vim.tbl_filter(function(w)
    return vim.api.nvim_win_get_config(w).relative ~= ''
  end, vim.api.nvim_list_wins())
end

--- Type keys (Neovim notation) and wait until Neovim has processed them.
local function type_keys(keys, done_when)
  vim.api.nvim_input(keys)
  await('keys ' .. keys .. ' to be processed', done_when)
end

--- Type in insert mode and wait for the final ghost text of the request that the typing triggered.
local function type_and_wait_ghost(keys, expect_line)
  local n = #events
  type_keys(keys, function()
    return mode() == 'i' and vim.api.nvim_get_current_line() == expect_line
  end)
  local res = await('the final ghost text', function()
    local g = ghost.get()
    local r = events_since(n, 'DiffusionLsResult')
    return g and g.final and #r > 0 and r[#r].id == g.id and r[#r]
  end)
  return res, n
end

local SAMPLE = {
  'import math',
  '',
  '',
  'def area(radius):',
  '    return math.pi * radius ** 2',
  '',
  '',
  'def perimeter(radius):',
}

local cases = {}

cases[#cases + 1] = { 'stream_accept_all', function()
  open('ghost.py', SAMPLE)
  local res, n = type_and_wait_ghost('Go# the ', '# the ')
  case.request_id = res.id
  case.canvases = events_since(n, 'DiffusionLsCanvas', function(e) return e.id == res.id end)
  case.notifications = events_since(n, 'notification', function(e) return e.params.id == res.id end)
  case.result = res
  case.before = { lines = lines(), cursor = cursor(), ghost = ghost.get() }
  local t = tick()
  type_keys('<Tab>', function() return tick() ~= t end)
  case.after = { lines = lines(), cursor = cursor(), ghost = ghost.get(), marks = marks(ghost.ns), mode = mode() }
  type_keys('<Esc>', function() return mode() == 'n' end)
  -- `.` repeats the insert, the accepted text with it (Go: a new last line)
  local n_lines = #lines()
  type_keys('.', function() return #lines() == n_lines + 1 end)
  case.repeated = lines()
end }

cases[#cases + 1] = { 'type_through', function()
  open('through.py', SAMPLE)
  local res = type_and_wait_ghost('Go# the ', '# the ')
  case.result = res
  local g = ghost.get()
  case.before = { lines = lines(), cursor = cursor(), ghost = g }
  local first = vim.fn.strcharpart(g.text, 0, 1)
  case.typed = first
  local n = #events
  type_keys(first == '<' and '<LT>' or first, function()
    return vim.api.nvim_get_current_line() == '# the ' .. first
  end)
  vim.wait(300) -- past the 50 ms debounce: a re-trigger would have sent its request by now
  case.requests = #events_since(n, 'LspRequest', function(e)
    return e.method == 'textDocument/inlineCompletion' and e.type == 'pending'
  end)
  case.after = { lines = lines(), cursor = cursor(), ghost = ghost.get(), marks = marks(ghost.ns) }
  local t = tick()
  type_keys('<Tab>', function() return tick() ~= t end)
  case.accepted = { lines = lines(), cursor = cursor(), ghost = ghost.get() }
  type_keys('<Esc>', function() return mode() == 'n' end)
end }

-- :DiffusionToggle: typing asks for nothing while it is off, the trigger key still does; on again, typing asks
cases[#cases + 1] = { 'toggle_as_you_type', function()
  open('toggle.py', SAMPLE)
  local m = #notifications
  vim.cmd('DiffusionToggle')
  local n = #events
  type_keys('Go# the ', function() return mode() == 'i' and vim.api.nvim_get_current_line() == '# the ' end)
  vim.wait(300) -- past the 50 ms debounce: a request would have been sent by now
  case.off = {
    requests = #events_since(n, 'LspRequest', function(e)
      return e.method == 'textDocument/inlineCompletion' and e.type == 'pending'
    end),
    ghost = ghost.get() ~= nil,
  }
  n = #events
  vim.api.nvim_input('<M-\\>')
  case.asked = await('the asked-for ghost text', function()
    local g = ghost.get()
    return g and g.final and #events_since(n, 'DiffusionLsResult') > 0
  end) and true
  type_keys('<Esc>', function() return mode() == 'n' end)
  vim.cmd('DiffusionToggle')
  case.notifications = vim.list_slice(notifications, m + 1)
  local res = type_and_wait_ghost('o# compute the ', '# compute the ') -- below `# the `, `# the ` gets an empty answer
  case.on = res ~= nil
  type_keys('<Esc>', function() return mode() == 'n' end)
end }

-- <M-\> pressed right after typing (within debounce_ms): the asked-for request stands, the pending as-you-type one is
-- not sent after it (a trial's asked-for completions were replaced by automatic ones, refused quietly)
cases[#cases + 1] = { 'ask_right_after_typing', function()
  open('ask.py', SAMPLE)
  local n = #events
  vim.api.nvim_input('Go# the <M-\\>') -- one go: TextChangedI fires after the mapping asked
  await('the asked-for ghost text', function()
    local g = ghost.get()
    return g and g.final and #events_since(n, 'DiffusionLsResult') > 0
  end)
  vim.wait(300) -- past the 50 ms debounce: an as-you-type request would have been sent by now
  case.requests = #events_since(n, 'LspRequest', function(e)
    return e.method == 'textDocument/inlineCompletion' and e.type == 'pending'
  end)
  local g = ghost.get()
  case.ghost = g and { asked = g.asked, final = g.final } or vim.NIL
  type_keys('<Esc>', function() return mode() == 'n' end)
end }

--- Press an accept key until the ghost text is gone, recording the buffer and the ghost text around each press.
local function accept_until_gone(key)
  local steps = {}
  for _ = 1, 64 do
    local g = ghost.get()
    if not g then
      break
    end
    local before = { lines = lines(), cursor = cursor(), ghost = g }
    local t = tick()
    type_keys(key, function() return tick() ~= t end)
    steps[#steps + 1] = {
      before = before,
      after = { lines = lines(), cursor = cursor(), ghost = ghost.get(), marks = marks(ghost.ns) },
    }
  end
  return steps
end

cases[#cases + 1] = { 'accept_word', function()
  open('words.py', SAMPLE)
  case.result = type_and_wait_ghost('Go# a ', '# a ')
  case.steps = accept_until_gone('<C-Right>')
  type_keys('<Esc>', function() return mode() == 'n' end)
end }

cases[#cases + 1] = { 'accept_line', function()
  open('lines.py', SAMPLE)
  case.result = type_and_wait_ghost('Go# b ', '# b ')
  case.steps = accept_until_gone('<S-Tab>')
  type_keys('<Esc>', function() return mode() == 'n' end)
end }

cases[#cases + 1] = { 'tab_falls_through', function()
  open('tab.py', SAMPLE)
  vim.bo.expandtab = false
  -- <Tab> right after `o`, before any completion could be shown: Neovim's own <Tab> (its 0.11 default mapping).
  type_keys('Go<Tab>', function() return mode() == 'i' and vim.api.nvim_get_current_line() ~= '' end)
  case.lines = lines()
  type_keys('<Esc>', function() return mode() == 'n' end)
end }

cases[#cases + 1] = { 'dismiss_on_insert_leave', function()
  local bufnr, client = open('leave.py', SAMPLE)
  local n = #events
  type_keys('Go# if ', function() return vim.api.nvim_get_current_line() == '# if ' end)
  local shown = await('a ghost text', function()
    local g = ghost.get()
    return g and #marks(ghost.ns) > 0 and g
  end)
  case.shown = { ghost = shown, marks = marks(ghost.ns) }
  type_keys('<Esc>', function() return mode() == 'n' end)
  case.after_leave = { marks = marks(ghost.ns), ghost = ghost.get(), mode = mode() }
  local t_leave = now_ms()
  await('the request to end', function() return client.requests[shown.id] == nil end)
  case.after_end = { marks = marks(ghost.ns), ghost = ghost.get() }
  case.drawn_after_leave = #events_since(n, 'DiffusionLsCanvas', function(e) return e.t > t_leave end)
    + #events_since(n, 'DiffusionLsResult', function(e) return e.t > t_leave end)
  case.lines = lines(bufnr)
end }

cases[#cases + 1] = { 'stale_result_not_shown', function()
  local bufnr, client = open('stale.py', SAMPLE)
  local n = #events
  -- Type one more character as soon as the first request is sent: its canvases and result are now stale.
  local first
  local au = vim.api.nvim_create_autocmd('LspRequest', {
    callback = function(args)
      local r = args.data.request
      if not first and r.type == 'pending' and r.method == 'textDocument/inlineCompletion' then
        first = { id = args.data.request_id, tick = tick(), cursor = cursor() }
        vim.api.nvim_input('w')
        return true
      end
    end,
  })
  type_keys('Go# value ', function() return first ~= nil end)
  pcall(vim.api.nvim_del_autocmd, au)
  await('the typed w', function() return vim.api.nvim_get_current_line() == '# value w' end)
  case.first = first
  case.typed = { tick = tick(), cursor = cursor() }
  await('the first request to end', function() return client.requests[first.id] == nil end)
  local res = await('the ghost text of a later request', function()
    local g = ghost.get()
    local r = events_since(n, 'DiffusionLsResult', function(e) return e.id ~= first.id end)
    return g and g.final and #r > 0 and r[#r].id == g.id and r[#r]
  end)
  case.result = res
  case.ghost = ghost.get()
  case.drawn_for_first = vim.list_extend(
    events_since(n, 'DiffusionLsCanvas', function(e) return e.id == first.id end),
    events_since(n, 'DiffusionLsResult', function(e) return e.id == first.id end))
  case.notifications_for_first = events_since(n, 'notification', function(e) return e.params.id == first.id end)
  case.lines = lines(bufnr)
  type_keys('<Esc>', function() return mode() == 'n' end)
end }

local REWRITE = {
  'def scale(values, factor):',
  '    result = []',
  '    for v in values:',
  '        result.append(v * factor)',
  '    return result',
}

cases[#cases + 1] = { 'rewrite_accept_and_undo', function()
  open('rewrite.py', REWRITE)
  case.original = lines()
  local n = #events
  vim.api.nvim_input('3GVj:DiffusionRewrite<CR>')
  local res = await('the rewrite result', function()
    local r = events_since(n, 'DiffusionLsRewriteResult')
    return r[1]
  end)
  case.canvases = events_since(n, 'DiffusionLsRewriteCanvas')
  case.result = res
  case.preview = { lines = lines(), marks = marks(rewrite.ns) }
  local t = tick()
  type_keys(':DiffusionAccept<CR>', function() return tick() ~= t end)
  case.accepted = { lines = lines(), marks = marks(rewrite.ns) }
  t = tick()
  type_keys('u', function() return tick() ~= t end)
  case.undone = { lines = lines() }
end }

cases[#cases + 1] = { 'rewrite_reject_charwise', function()
  open('reject.py', REWRITE)
  case.original = lines()
  local n, m, k = #events, #notifications, #sent
  -- `v * factor` in `result.append(v * factor)`, with an instruction (the embedded model follows none)
  vim.api.nvim_input('4Gf(lvt):DiffusionRewrite make it a tuple<CR>')
  local res = await('the rewrite result', function()
    return events_since(n, 'DiffusionLsRewriteResult')[1] or events_since(n, 'DiffusionLsRewriteRefused')[1]
  end)
  case.result = res
  case.notifications = vim.list_slice(notifications, m + 1)
  case.sent = vim.list_slice(sent, k + 1)
  case.preview = { lines = lines(), marks = marks(rewrite.ns) }
  type_keys(':DiffusionReject<CR>', function() return not rewrite.has_preview(0) end)
  case.rejected = { lines = lines(), marks = marks(rewrite.ns), modified = vim.bo.modified }
end }

cases[#cases + 1] = { 'rewrite_refused', function()
  open('refused.py', REWRITE)
  case.original = lines()
  local n, m = #events, #notifications
  -- `[]` in `result = []`: the model writes `[]` again, which the server refuses (it would change nothing)
  vim.api.nvim_input('2Gf[vl:DiffusionRewrite<CR>')
  case.refused = await('the rewrite answer', function()
    return events_since(n, 'DiffusionLsRewriteRefused')[1] or events_since(n, 'DiffusionLsRewriteResult')[1]
  end)
  case.canvases = events_since(n, 'DiffusionLsRewriteCanvas')
  case.notifications = vim.list_slice(notifications, m + 1)
  case.after = { lines = lines(), marks = marks(rewrite.ns), preview = rewrite.has_preview(0), tick = tick() }
  vim.cmd('DiffusionAccept') -- nothing to accept: nothing happens
  case.accepted = { lines = lines(), marks = marks(rewrite.ns), tick = tick() }
end }

--- :DiffusionFill on a file; what the server answered, the preview, what landed in the buffer on the accept key, what
--- one undo leaves, and what the user was told.
local function fill_case(name, text)
  open(name, text)
  case.original = lines()
  local n, m = #events, #notifications
  vim.api.nvim_input(':DiffusionFill<CR>')
  case.result = await('the fill result', function()
    return events_since(n, 'DiffusionLsFillResult')[1]
  end)
  case.notifications = vim.list_slice(notifications, m + 1)
  case.preview = { lines = lines(), marks = marks(rewrite.ns), pending = rewrite.has_preview(0) }
  if case.preview.pending then
    vim.api.nvim_input('\\da') -- the accept key, <leader>da
    await('the fill accepted', function()
      return not rewrite.has_preview(0)
    end)
  end
  case.after = { lines = lines(), marks = marks(rewrite.ns) }
  if case.preview.pending then
    vim.cmd('undo')
    case.undone = { lines = lines() }
  end
end

cases[#cases + 1] = { 'fill_placeholders', function()
  fill_case('fill.py', { 'def double(x):', '    ...', '', '', 'def triple(x):', '    pass' })
end }

cases[#cases + 1] = { 'fill_partly', function()
  fill_case('partly.py', {
    'class Counter:', '    def __init__(self):', '        ...', '', '    def inc(self):', '        pass',
  })
end }

cases[#cases + 1] = { 'status_report', function()
  local _, client = open('status.py', SAMPLE)
  local messages, n = vim.fn.execute('messages'), #notifications
  vim.api.nvim_input(':DiffusionStatus<CR>')
  local win = await('the status window', function()
    return floats()[1]
  end)
  local conf = vim.api.nvim_win_get_config(win)
  case.status = require('diffusion_ls.status').last(client) -- what the report was made of
  case.float = { lines = vim.api.nvim_buf_get_lines(vim.api.nvim_win_get_buf(win), 0, -1, false), title = conf.title }
  case.messages_before, case.messages_after = messages, vim.fn.execute('messages')
  case.notifications = vim.list_slice(notifications, n + 1)
  case.mode = mode()
  type_keys('j', function() return not vim.api.nvim_win_is_valid(win) end) -- moving the cursor closes it
  case.floats_after = #floats()
  -- asked again while it is open, the report is entered (as hover is), and `q` there closes it
  vim.api.nvim_input(':DiffusionStatus<CR>')
  win = await('the status window again', function() return floats()[1] end)
  vim.api.nvim_input(':DiffusionStatus<CR>')
  case.entered = await('the status window entered', function()
    return vim.api.nvim_get_current_win() == win or not vim.api.nvim_win_is_valid(win) or nil
  end) and vim.api.nvim_get_current_win() == win
  if case.entered then
    type_keys('q', function() return not vim.api.nvim_win_is_valid(win) end)
  end
  case.floats_end = #floats()
end }

cases[#cases + 1] = { 'checkhealth', function()
  vim.cmd('checkhealth diffusion_ls')
  case.lines = lines()
end }

-- Typed before the server has answered `initialize` (seconds on a loaded machine): the completion is asked for once
-- it attaches. The first plain case, so the server is not running yet when the keys go in.
cases[#cases + 1] = { 'typed_before_attach', plain = true, function()
  vim.cmd('silent! %bwipeout!')
  vim.cmd.edit(vim.fs.joinpath(dir, 'early.py'))
  vim.bo.autoindent, vim.bo.smartindent, vim.bo.indentexpr, vim.bo.textwidth = false, false, '', 0
  vim.api.nvim_buf_set_lines(0, 0, -1, false, SAMPLE)
  local bufnr = vim.api.nvim_get_current_buf()
  local attached = false
  vim.api.nvim_create_autocmd('LspAttach', { buffer = bufnr, once = true, callback = function() attached = true end })
  assert(lsp.attach(bufnr), 'no client')
  local k = #notifications
  vim.cmd('DiffusionStatus') -- before the server has answered initialize
  case.status_while_starting = { attached = attached, notes = vim.list_slice(notifications, k + 1) }
  -- asked for, so not start-up noise: plain_start checks that starting says nothing by itself
  for i = #notifications, k + 1, -1 do
    table.remove(notifications, i)
  end
  vim.cmd('messages clear')
  local m = #events
  type_keys('Go# the ', function() return mode() == 'i' and vim.api.nvim_get_current_line() == '# the ' end)
  case.typed_before_attach = not attached
  case.request = await('an automatic completion request', function()
    return events_since(m, 'LspRequest', function(e)
      return e.method == 'textDocument/inlineCompletion' and e.type == 'pending'
    end)[1]
  end)
  case.attached = attached
  type_keys('<Esc>', function() return mode() == 'n' end)
end }

-- Started as a user does: `setup({})`, the server's defaults.
cases[#cases + 1] = { 'plain_start', plain = true, function()
  local _, client = open('plain.py', SAMPLE)
  case.status = wait_loaded(client)
  case.init_options = vim.json.encode(client.config.init_options)
  case.notifications = vim.deepcopy(notifications)
  case.messages = vim.fn.execute('messages')
end }

cases[#cases + 1] = { 'invalid_option', plain = true, function()
  local n = #notifications
  require('diffusion_ls').setup({ debounce_ms = 'fast', server_settings = { steps = 'fast' } })
  case.notifications = vim.list_slice(notifications, n + 1)
  case.is_setup = require('diffusion_ls').is_setup()
  case.debounce_ms = require('diffusion_ls.config').get().debounce_ms
  case.tab = vim.fn.maparg('<Tab>', 'i', false, true).desc
  -- everything else works: typing asks for a completion by itself (after the default debounce)
  open('invalid.py', SAMPLE)
  local m = #events
  type_keys('Go# the ', function() return mode() == 'i' and vim.api.nvim_get_current_line() == '# the ' end)
  case.request = await('an automatic completion request', function()
    return events_since(m, 'LspRequest', function(e)
      return e.method == 'textDocument/inlineCompletion' and e.type == 'pending'
    end)[1]
  end)
  type_keys('<Esc>', function() return mode() == 'n' end)
  vim.cmd('checkhealth diffusion_ls')
  case.health = lines()
end }

-- setup() again: the running server takes the new settings, and one left out goes back to its default (a trial had
-- `strategy = 'lossless'` stay after a setup() without it)
cases[#cases + 1] = { 'setup_again', plain = true, function()
  local _, client = open('again.py', SAMPLE)
  local function status_where(what, ok)
    local pending, last = false, nil
    return await(what, function()
      if not pending then
        pending = true
        client:request('diffusion/status', vim.empty_dict(), function(err, result)
          pending = false
          last = not err and result or nil
        end)
      end
      return last and not last.loading and ok(last) and last
    end)
  end
  require('diffusion_ls').setup({ server_settings = { strategy = 'lossless' } })
  case.lossless = status_where('strategy lossless', function(s) return s.strategy == 'lossless' end)
  require('diffusion_ls').setup({})
  case.default = status_where('the default strategy', function(s) return s.strategy ~= 'lossless' end)
  case.init_options = vim.json.encode(client.config.init_options)
end }

local only = os.getenv('DIFFUSION_LS_CASES')
only = only ~= '' and only or nil
local main = coroutine.create(function()
  for _, c in ipairs(cases) do
    local name, fn = c[1], c[2]
    if (c.plain or false) == PLAIN and (not only or vim.tbl_contains(vim.split(only, ','), name)) then
      case = { started = now_ms() }
      report.cases[name] = case
      report.order[#report.order + 1] = name
      local ok, err = xpcall(fn, debug.traceback)
      case.ok, case.error, case.ms = ok, not ok and tostring(err) or nil, now_ms() - case.started
      if not ok then
        vim.cmd('silent! stopinsert')
      end
    end
  end
  report.events = os.getenv('DIFFUSION_LS_EVENTS') and events or #events
  finish()
end)

vim.schedule(function()
  local ok, err = coroutine.resume(main)
  if not ok then
    report.fatal = tostring(err)
    finish()
  end
end)
