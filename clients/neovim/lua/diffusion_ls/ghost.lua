--- Inline ghost text: trigger with debounce, draw every canvas live, accept all / word / line, dismiss.
local config = require('diffusion_ls.config')
local lsp = require('diffusion_ls.lsp')

local M = {}

M.ns = vim.api.nvim_create_namespace('diffusion_ls.ghost')

require('diffusion_ls.highlights').set()

---@class diffusion_ls.GhostState
---@field req? diffusion_ls.Request the request in flight (or answered) for this ghost
---@field row integer anchor: the cursor when requested, moved along by partial accepts (0-based)
---@field col integer anchor byte column
---@field text string what is shown: the canvas so far, or the rest of the final completion
---@field final boolean the request's result (only a final ghost can be accepted)
---@field del_after integer bytes after the anchor that a full accept replaces (the item's range end)
---@field tick integer b:changedtick the ghost is valid for
---@field line? string the anchor's line when the final text was drawn (typing through it is checked against it)
---@field extmark? integer
---@field asked boolean requested explicitly (the trigger key, :DiffusionComplete): a refusal or failure is said

---@type table<integer, diffusion_ls.GhostState>
local state = {}

--- b:changedtick after the plugin's own edits (accepts), which must not dismiss or re-trigger.
---@type table<integer, integer>
local own_tick = {}

local timer ---@type uv.uv_timer_t?
local asked_tick = {} ---@type table<integer, integer> the buffer's changedtick when a completion was last asked for

--- Ranges [s, e) of `text` in UTF-16 code units (as the server sends them) as byte ranges, sorted.
---@param text string
---@param masks? integer[][]
---@return integer[][]
local function mask_bytes(text, masks)
  local out = {}
  for _, m in ipairs(masks or {}) do
    local s = vim.str_byteindex(text, 'utf-16', m[1], false)
    local e = vim.str_byteindex(text, 'utf-16', m[2], false)
    if e > s then
      out[#out + 1] = { s, e }
    end
  end
  table.sort(out, function(a, b)
    return a[1] < b[1]
  end)
  return out
end

--- Split text into lines of [text, hl_group] chunks, masked character ranges drawn with `masked_hl`.
---@param text string
---@param masks? integer[][] [start, end) ranges of text in UTF-16 code units
---@param hl string
---@param masked_hl string
---@param offset? integer bytes of plain text (hl) prepended to the first line (rewrite previews)
---@return string[][][] lines
function M.chunks(text, masks, hl, masked_hl, offset)
  local ranges = mask_bytes(text, masks)
  local lines = {}
  local start = 0
  for line in (text .. '\n'):gmatch('([^\n]*)\n') do
    -- a CRLF buffer's text comes with "\r\n": the "\r" ends the line, it is not drawn (it would show as ^M)
    local stop = start + #line - (line:sub(-1) == '\r' and 1 or 0)
    local chunks = {}
    local cur = start
    for _, r in ipairs(ranges) do
      local a, b = math.max(r[1], start), math.min(r[2], stop)
      if a < b then
        if a > cur then
          chunks[#chunks + 1] = { text:sub(cur + 1, a), hl }
        end
        chunks[#chunks + 1] = { text:sub(a + 1, b), masked_hl }
        cur = b
      end
    end
    if cur < stop then
      chunks[#chunks + 1] = { text:sub(cur + 1, stop), hl }
    end
    lines[#lines + 1] = chunks
    start = start + #line + 1
  end
  return lines
end

---@param bufnr integer
---@param g diffusion_ls.GhostState
---@param masks? integer[][]
local function render(bufnr, g, masks)
  local lines = M.chunks(g.text, masks, 'DiffusionLsGhost', 'DiffusionLsMasked')
  local first = table.remove(lines, 1)
  local opts = {
    id = g.extmark,
    virt_text = #first > 0 and first or nil,
    virt_text_pos = #first > 0 and 'inline' or nil,
    virt_lines = #lines > 0 and lines or nil,
    hl_mode = 'combine',
    right_gravity = false,
    priority = 200,
  }
  if g.extmark then
    -- Replace, so a line that became empty leaves no old chunks behind.
    vim.api.nvim_buf_del_extmark(bufnr, M.ns, g.extmark)
  end
  local ok, id = pcall(vim.api.nvim_buf_set_extmark, bufnr, M.ns, g.row, g.col, opts)
  g.extmark = ok and id or nil
end

local noted = {} ---@type table<integer, { row: integer, col: integer }> where a refusal's reason is shown
---@type table<integer, { sent: integer, pending: boolean, ms: number?, refused: string? }> per buffer, for statusline()
local last = {}
local status_used = false -- statusline() was called: redraw the statusline when what it says changes

local function redraw_status()
  if status_used then
    pcall(vim.cmd.redrawstatus)
  end
end

--- The statusline's figures change: a request sent, answered, refused or let go. As you type, a request that ends
--- with nothing to show leaves no figure: most do (a word half typed, a weak language the server completes only
--- when asked), and "no suggestion" at each of them read as a fault.
---@param bufnr integer
---@param pending boolean
---@param refused? string
---@param asked? boolean
local function track(bufnr, pending, refused, asked)
  local t = last[bufnr]
  if pending then
    last[bufnr] = { sent = vim.uv.hrtime(), pending = true }
  elseif t and t.pending and refused and not asked then
    last[bufnr] = nil
  elseif t and t.pending then
    t.pending, t.ms, t.refused = false, (vim.uv.hrtime() - t.sent) / 1e6, refused
  else
    return
  end
  redraw_status()
end

--- Hide the ghost text of a buffer and cancel its request.
---@param bufnr? integer
function M.dismiss(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local g = state[bufnr]
  state[bufnr] = nil
  noted[bufnr] = nil
  if g then
    lsp.cancel(g.req)
    if last[bufnr] and last[bufnr].pending then
      last[bufnr] = nil -- let go before its answer: no figure to show
      redraw_status()
    end
  end
  if vim.api.nvim_buf_is_valid(bufnr) then
    vim.api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  end
end

---@param bufnr integer
---@return boolean
local function cursor_at(bufnr, row, col)
  if vim.api.nvim_get_current_buf() ~= bufnr then
    return false
  end
  local cur = vim.api.nvim_win_get_cursor(0)
  return cur[1] - 1 == row and cur[2] == col
end

--- The ghost state if it still belongs to the request and the buffer and cursor have not moved on.
---@param req diffusion_ls.Request
---@param version? integer
---@return diffusion_ls.GhostState?
local function live(req, version)
  local g = state[req.bufnr]
  if not g or g.req ~= req then
    return nil
  end
  if not lsp.is_current(req) or not cursor_at(req.bufnr, g.row, g.col) then
    M.dismiss(req.bufnr)
    return nil
  end
  if version ~= nil and version ~= req.version then
    return nil -- computed for another version of the document
  end
  return g
end

--- Why an asked-for completion was refused, dimmed at the end of the cursor's line until the cursor moves or the
--- text changes: in Insert mode "-- INSERT --" redraws over the command line at once, so the message alone was
--- only in :messages.
---@param bufnr integer
---@param row integer
---@param col integer
---@param text string
local function note(bufnr, row, col, text)
  -- a line wider than its window (minified code) has its end off screen: the note goes at the cursor instead
  local line = vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
  local win = vim.fn.bufwinid(bufnr)
  local wide = win ~= -1 and vim.fn.strdisplaywidth(line) + #text + 2 > vim.api.nvim_win_get_width(win)
  vim.api.nvim_buf_set_extmark(bufnr, M.ns, row, wide and math.min(col, #line) or 0, {
    virt_text = { { (wide and ' ' or '  ') .. text:gsub('%s*\n%s*', '; ') .. (wide and ' ' or ''),
      'DiffusionLsHint' } },
    virt_text_pos = wide and 'inline' or 'eol',
    hl_mode = 'combine',
  })
  noted[bufnr] = { row = row, col = col }
end

---@param canvas table diffusion/canvas params
---@param req diffusion_ls.Request
local function on_canvas(canvas, req)
  local g = live(req, canvas.version)
  if not g or g.final then
    return
  end
  if canvas.done and type(canvas.reason) == 'string' then
    -- The server refused the result: the canvas goes away instead of becoming the final ghost text. Asked for, the
    -- user is told why; as you type, a message at every refused keystroke would be noise.
    track(req.bufnr, false, canvas.reason, g.asked)
    M.dismiss(req.bufnr)
    if g.asked then
      lsp.say('diffusion-ls: no suggestion: ' .. canvas.reason, vim.log.levels.INFO)
      note(req.bufnr, g.row, g.col, 'no suggestion: ' .. canvas.reason)
    end
    vim.api.nvim_exec_autocmds('User', {
      pattern = 'DiffusionLsCanvas',
      modeline = false,
      data = {
        bufnr = req.bufnr, id = req.id, step = canvas.step, nfe = canvas.nfe, done = true, reason = canvas.reason,
      },
    })
    return
  end
  local stream = config.get().stream
  if not canvas.done and not (stream == true or stream == 'asked' and g.asked) then
    return -- as you type, a canvas the server may still refuse would flash and vanish: only the result is drawn
  end
  local row, col = lsp.to_byte(req.bufnr, canvas.range.start, req.client.offset_encoding)
  if row ~= g.row or col ~= g.col then
    return
  end
  g.text = canvas.text
  render(req.bufnr, g, canvas.masks)
  vim.api.nvim_exec_autocmds('User', {
    pattern = 'DiffusionLsCanvas',
    modeline = false,
    data = {
      bufnr = req.bufnr, id = req.id, step = canvas.step, nfe = canvas.nfe, done = canvas.done,
      text = canvas.text, masks = canvas.masks,
    },
  })
end

---@param item table InlineCompletionItem
---@param g diffusion_ls.GhostState
---@param req diffusion_ls.Request
---@return string? text shown at the anchor, integer? del_after
local function normalize(item, g, req)
  local text = type(item.insertText) == 'table' and item.insertText.value or item.insertText
  if type(text) ~= 'string' then
    return nil
  end
  if not item.range then
    return text, 0
  end
  local enc = req.client.offset_encoding
  local srow, scol = lsp.to_byte(req.bufnr, item.range.start, enc)
  local erow, ecol = lsp.to_byte(req.bufnr, item.range['end'], enc)
  if srow ~= g.row or erow ~= g.row or scol > g.col or ecol < g.col then
    return nil
  end
  -- The range may start before the cursor: show what the item adds to the typed text.
  local line = vim.api.nvim_buf_get_lines(req.bufnr, g.row, g.row + 1, false)[1] or ''
  local typed = line:sub(scol + 1, g.col)
  if text:sub(1, #typed) ~= typed then
    return nil
  end
  return text:sub(#typed + 1), ecol - g.col
end

---@param err? lsp.ResponseError
---@param result any InlineCompletionList | InlineCompletionItem[] | nil
---@param req diffusion_ls.Request
local function on_result(err, result, req)
  local g = live(req)
  if not g then
    return
  end
  local items = type(result) == 'table' and (result.items or result) or {}
  local text, del_after
  if not err and items[1] then
    text, del_after = normalize(items[1], g, req)
  elseif err and g.asked and err.code ~= -32800 then -- not cancelled
    local why = (err.message or ''):gsub('^diffusion%-ls: ', '') -- the server's own messages start with its name
    lsp.say('diffusion-ls: completion failed: ' .. why, vim.log.levels.WARN)
  end
  if not text or text == '' then
    -- a failed request (no model loaded, a server error) is kept even as you type: "no figure" would hide it
    local failed = err and err.code ~= -32800 and err.code ~= -32801
    track(req.bufnr, false, failed and 'error' or err and 'cancelled' or 'nothing to suggest', g.asked or failed)
    M.dismiss(req.bufnr)
    return
  end
  track(req.bufnr, false)
  g.text, g.del_after, g.final = text, del_after, true
  g.line = vim.api.nvim_buf_get_lines(req.bufnr, g.row, g.row + 1, false)[1]
  render(req.bufnr, g)
  vim.api.nvim_exec_autocmds('User', {
    pattern = 'DiffusionLsResult',
    modeline = false,
    data = { bufnr = req.bufnr, id = req.id, text = text, item = items[1] },
  })
end

--- Ask for a completion at the cursor now; the previous request of the buffer is cancelled.
---@param bufnr? integer
---@param automatic? boolean triggered by typing (else invoked explicitly)
function M.trigger(bufnr, automatic)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  if not automatic then
    -- an as-you-type request still waiting out debounce_ms would replace this asked-for one
    asked_tick[bufnr] = vim.api.nvim_buf_get_changedtick(bufnr)
    if timer then
      timer:stop()
    end
  end
  M.dismiss(bufnr)
  local function send(client)
    if vim.api.nvim_get_current_buf() ~= bufnr then
      return
    end
    M.dismiss(bufnr)
    local cur = vim.api.nvim_win_get_cursor(0)
    local params = vim.lsp.util.make_position_params(0, client.offset_encoding) ---@type table
    params.context = { triggerKind = automatic and 2 or 1 } -- InlineCompletionTriggerKind: Invoked 1, Automatic 2
    ---@type diffusion_ls.GhostState
    local g = { row = cur[1] - 1, col = cur[2], text = '', final = false, del_after = 0, tick = 0, asked = not automatic }
    state[bufnr] = g
    g.req = lsp.request(client, bufnr, 'textDocument/inlineCompletion', params, on_result, on_canvas)
    if not g.req then
      state[bufnr] = nil
    else
      g.tick = g.req.tick
      track(bufnr, true)
    end
  end
  if automatic then
    local client = lsp.get_client(bufnr)
    if client and client.initialized and client.attached_buffers[bufnr] then
      send(client)
    end
  else
    lsp.with_client(bufnr, send)
  end
end

--- The ghost text shown in a buffer, if any (for statuslines and tests).
--- `replace`: bytes after the anchor that accepting all of it replaces.
---@param bufnr? integer
---@return { text: string, final: boolean, row: integer, col: integer, replace: integer, id: integer }?
function M.get(bufnr)
  local g = state[bufnr or vim.api.nvim_get_current_buf()]
  if not g or not g.extmark then
    return nil
  end
  return {
    text = g.text, final = g.final, row = g.row, col = g.col, replace = g.del_after, id = g.req and g.req.id,
    asked = g.asked,
  }
end

--- A short statusline text for the buffer: '' without a diffusion-ls client; else "diffusion-ls" and what it does
--- now ("starting", "…" while a completion runs, "off" when completion as you type is off there) or did last (its
--- time, "no suggestion", or "error": the request failed, no model loaded). Cheap: it asks the server nothing.
---@param bufnr? integer
---@return string
function M.statusline(bufnr)
  status_used = true
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  local client = lsp.get_client(bufnr)
  if not client then
    return ''
  end
  if not client.initialized then
    return 'diffusion-ls starting'
  end
  local t = last[bufnr]
  local what = t and (t.pending and '…' or t.refused == 'error' and 'error' or t.refused and 'no suggestion'
    or t.ms and ('%d ms'):format(math.floor(t.ms + 0.5)))
  if not M.auto(bufnr) then
    what = what and ('off, ' .. what) or 'off'
  else -- a language the model is weak at: the server completes it only when asked, or never (weakLanguages)
    local s = require('diffusion_ls.status').last(client)
    local mode = s and type(s.languages) == 'table' and s.languages[vim.bo[bufnr].filetype] == 'weak'
      and s.weakLanguages
    if mode == 'explicit' or mode == 'off' then
      local how = mode == 'off' and 'off here' or 'when asked'
      what = what and (how .. ', ' .. what) or how
    end
  end
  return what and ('diffusion-ls ' .. what) or 'diffusion-ls'
end

--- True when a final ghost text can be accepted in the current buffer.
---@return boolean
function M.visible()
  local g = state[vim.api.nvim_get_current_buf()]
  return g ~= nil and g.final and g.extmark ~= nil and g.text ~= ''
end

--- The start of `text` up to the end of its next word (leading whitespace and newlines included).
---@param text string
---@return string
function M.next_word(text)
  local ws = text:match('^%s*')
  local rest = text:sub(#ws + 1)
  return ws .. (rest:match('^[%w_]+') or rest:match('^[^%w_%s]+') or '')
end

--- The start of `text` up to the end of its current line (a leading newline and the next line when at an end).
---@param text string
---@return string
function M.next_line(text)
  return text:match('^\r?\n?[^\r\n]*') -- a CRLF text's "\r" belongs to the line break, not to the line
end

--- What accepting `kind` of the shown ghost text inserts: (part, full, used), or nil when nothing can be accepted.
--- `used`: the bytes of the ghost text it takes (the part before its "\r\n" became "\n").
---@param bufnr integer
---@param kind? "all"|"word"|"line"
---@return string? part
---@return boolean full
---@return integer used
local function acceptable(bufnr, kind)
  local g = state[bufnr]
  if not M.visible() or not g or not cursor_at(bufnr, g.row, g.col) then
    return nil, false, 0
  end
  if vim.api.nvim_buf_get_changedtick(bufnr) ~= g.tick then
    M.dismiss(bufnr)
    return nil, false, 0
  end
  local part = g.text
  if kind == 'word' then
    part = M.next_word(g.text)
  elseif kind == 'line' then
    part = M.next_line(g.text)
  end
  local full = part == '' or #part >= #g.text
  part = full and g.text or part
  return (part:gsub('\r\n', '\n')), full, #part -- a line's text holds no "\r"
end

--- After `part` was inserted at the ghost text's anchor: the cursor's position is the new anchor; the rest of a
--- partly accepted ghost text stays shown.
---@param bufnr integer
---@param used integer bytes of the ghost text accepted
---@param full boolean
local function accepted(bufnr, used, full)
  local g = state[bufnr]
  own_tick[bufnr] = vim.api.nvim_buf_get_changedtick(bufnr)
  if full or not g then
    M.dismiss(bufnr)
    return
  end
  local cur = vim.api.nvim_win_get_cursor(0)
  g.text, g.row, g.col, g.tick = g.text:sub(used + 1), cur[1] - 1, cur[2], own_tick[bufnr]
  g.line = vim.api.nvim_buf_get_lines(bufnr, g.row, g.row + 1, false)[1]
  render(bufnr, g)
end

--- Insert all, the next word or the next line of the ghost text; the rest stays shown. (The keymaps insert it as
--- typed text instead, so that `.` repeats it: see accept_keys.)
---@param kind? "all"|"word"|"line"
---@return boolean accepted
function M.accept(kind)
  local bufnr = vim.api.nvim_get_current_buf()
  local part, full, used = acceptable(bufnr, kind)
  if not part then
    return false
  end
  local g = state[bufnr]
  local lines = vim.split(part, '\n', { plain = true })
  vim.api.nvim_buf_set_text(bufnr, g.row, g.col, g.row, g.col + (full and g.del_after or 0), lines)
  vim.api.nvim_win_set_cursor(0, { g.row + #lines, (#lines == 1 and g.col or 0) + #lines[#lines] })
  accepted(bufnr, used, full)
  return true
end

-- the text accept_keys is putting in (the expression register reads it)
local queued ---@type { bufnr: integer, part: string, full: boolean, used: integer }?

--- Keys that accept as if the text were typed, so that `.` repeats the insert with it: the replaced characters are
--- deleted with <Del>, the text goes in through the expression register, literally (<C-R><C-R>: Neovim leaves what
--- <C-R><C-O> inserts out of the repeat), and the ghost text's state follows. nil when nothing can be accepted, or
--- for text of several lines, which auto-indent would indent twice: M.accept puts those in (not repeated by `.`).
---@param kind? "all"|"word"|"line"
---@return string? keys
function M.accept_keys(kind)
  local bufnr = vim.api.nvim_get_current_buf()
  local part, full, used = acceptable(bufnr, kind)
  if not part or part:find('\n', 1, true) then
    return nil
  end
  local g = state[bufnr]
  local line = vim.api.nvim_get_current_line()
  local dels = full and vim.fn.strchars(line:sub(g.col + 1, g.col + g.del_after)) or 0
  queued = { bufnr = bufnr, part = part, full = full, used = used }
  return vim.keycode(string.rep('<Del>', dels) .. '<C-R><C-R>=v:lua.require("diffusion_ls.ghost")._queued()<CR>'
    .. '<Cmd>lua require("diffusion_ls.ghost")._accepted()<CR>')
end

---@private
function M._queued()
  return queued and queued.part or ''
end

---@private
function M._accepted()
  local q = queued
  queued = nil -- a repeat (`.`) replays the inserted text, not this: the text is read once
  if q and vim.api.nvim_get_current_buf() == q.bufnr then
    accepted(q.bufnr, q.used, q.full)
  end
end

--- Typing what a final ghost text starts with keeps it, as Copilot and llama.vim do: the typed characters leave the
--- ghost text, its anchor moves with the cursor, and no request is sent. Anything else typed (or typing all of it)
--- is left to the usual dismiss and re-trigger.
---@param bufnr? integer 0 or nil: the current buffer
---@return boolean kept
function M.type_through(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  local g = state[bufnr]
  if not g or not g.final or not g.line or vim.api.nvim_get_current_buf() ~= bufnr then
    return false
  end
  local cur = vim.api.nvim_win_get_cursor(0)
  local row, col = cur[1] - 1, cur[2]
  if row ~= g.row or col <= g.col then
    return false
  end
  local line = vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
  local typed = line:sub(g.col + 1, col)
  if
    #typed >= #g.text
    or g.text:sub(1, #typed) ~= typed
    or line ~= g.line:sub(1, g.col) .. typed .. g.line:sub(g.col + 1) -- only these characters, typed at the anchor
  then
    return false
  end
  g.text, g.col, g.line = g.text:sub(#typed + 1), col, line
  g.tick = vim.api.nvim_buf_get_changedtick(bufnr)
  own_tick[bufnr] = g.tick -- TextChangedI: not a change to react to
  render(bufnr, g)
  return true
end

local function stop_timer()
  if timer then
    timer:stop()
  end
end

--- Whether typing in the buffer asks for completions: its own switch (:DiffusionToggle!) when set, else the
--- `auto_trigger` option (:DiffusionToggle).
---@param bufnr? integer
---@return boolean
function M.auto(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  local own = vim.b[bufnr].diffusion_ls_auto_trigger
  if own ~= nil then
    return own == true
  end
  return config.get().auto_trigger
end

--- Turn completion as you type off or on, everywhere or (`buffer`) in one buffer; says what it is now.
---@param buffer? boolean only the current buffer
---@return boolean on
function M.toggle(buffer)
  local bufnr = vim.api.nvim_get_current_buf()
  local on = not M.auto(bufnr)
  if buffer then
    vim.b[bufnr].diffusion_ls_auto_trigger = on
  else
    config.get().auto_trigger = on
    for _, b in ipairs(vim.api.nvim_list_bufs()) do -- everywhere: a buffer's own switch gives way
      vim.b[b].diffusion_ls_auto_trigger = nil
    end
  end
  if not on then
    M.dismiss(bufnr)
  end
  local where = buffer and 'in this buffer' or 'everywhere'
  local trigger = config.get().keymaps.trigger
  lsp.say(('diffusion-ls: completion as you type %s %s%s'):format(on and 'on' or 'off', where,
    on and '' or ('; %s still asks'):format(trigger or ':DiffusionComplete')), vim.log.levels.INFO)
  return on
end

--- Debounced auto-trigger after typing.
---@param bufnr integer
local function schedule_trigger(bufnr)
  timer = timer or assert(vim.uv.new_timer())
  local tick = vim.api.nvim_buf_get_changedtick(bufnr)
  timer:stop()
  timer:start(config.get().debounce_ms, 0, vim.schedule_wrap(function()
    if
      vim.api.nvim_get_current_buf() == bufnr
      and vim.api.nvim_buf_get_changedtick(bufnr) == tick
      and asked_tick[bufnr] ~= tick -- asked for since the last change: that request stands
      and vim.api.nvim_get_mode().mode:sub(1, 1) == 'i'
      and vim.fn.pumvisible() == 0
    then
      M.trigger(bufnr, true)
    end
  end))
end

local waiting = {} ---@type table<integer, true> buffers typed into before the server attached
--- Typing before the server has answered `initialize` (it can take seconds on a loaded machine) sent nothing, and
--- nothing asked again: complete once the server attaches, if the user is still typing in the buffer.
---@param bufnr integer
local function trigger_on_attach(bufnr)
  if waiting[bufnr] then
    return
  end
  waiting[bufnr] = true
  vim.api.nvim_create_autocmd('LspAttach', {
    buffer = bufnr,
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if not client or client.name ~= lsp.name then
        return false
      end
      waiting[bufnr] = nil
      if vim.api.nvim_get_current_buf() == bufnr and vim.api.nvim_get_mode().mode:sub(1, 1) == 'i' then
        schedule_trigger(bufnr)
      end
      return true -- delete this autocmd
    end,
  })
end

--- Previous mappings of our keys, to fall through to when no ghost text is shown.
---@type table<string, table>
local fallbacks = {}
local mapped = {} ---@type string[]

---@param lhs string
---@return string keys
local function fallback_keys(lhs)
  local prev = fallbacks[lhs]
  if not prev or vim.tbl_isempty(prev) then
    return vim.keycode(lhs)
  end
  if prev.expr == 1 then
    local keys = prev.callback and prev.callback() or vim.api.nvim_eval(prev.rhs)
    return prev.replace_keycodes == 1 and vim.keycode(keys or '') or (keys or '')
  end
  if prev.callback then
    return vim.keycode(('<Cmd>lua require("diffusion_ls.ghost")._fallback(%q)<CR>'):format(lhs))
  end
  return vim.keycode(prev.rhs)
end

---@private
function M._fallback(lhs)
  fallbacks[lhs].callback()
end

---@param lhs string|false
---@param action string Lua expression run when a ghost text is shown
---@param desc string
---@param always? boolean act even when nothing is shown (else fall through)
local function map(lhs, action, desc, always)
  if not lhs then
    return
  end
  local prev = vim.fn.maparg(lhs, 'i', false, true)
  if not (prev.desc or ''):match('^diffusion_ls') then
    fallbacks[lhs] = prev
  end
  vim.keymap.set('i', lhs, function()
    local kind = action:match('%.accept%("(%a+)"%)$')
    local keys = kind and M.accept_keys(kind)
    if keys then
      return keys
    end
    if always or M.visible() then
      return vim.keycode(('<Cmd>lua %s<CR>'):format(action))
    end
    return fallback_keys(lhs)
  end, { expr = true, replace_keycodes = false, silent = true, desc = 'diffusion_ls: ' .. desc })
  mapped[#mapped + 1] = lhs
end

function M.setup()
  local cfg = config.get()
  for _, lhs in ipairs(mapped) do
    pcall(vim.keymap.del, 'i', lhs)
    if fallbacks[lhs] and not vim.tbl_isempty(fallbacks[lhs]) then
      vim.fn.mapset('i', false, fallbacks[lhs])
    end
  end
  mapped = {}
  local km = cfg.keymaps
  local ghost = 'require("diffusion_ls.ghost")'
  map(km.accept, ghost .. '.accept("all")', 'accept the completion')
  map(km.accept_word, ghost .. '.accept("word")', 'accept the next word')
  map(km.accept_line, ghost .. '.accept("line")', 'accept the next line')
  map(km.dismiss, ghost .. '.dismiss()', 'dismiss the completion')
  map(km.trigger, ghost .. '.trigger()', 'complete at the cursor', true)

  local group = vim.api.nvim_create_augroup('diffusion_ls.ghost', { clear = true })
  vim.api.nvim_create_autocmd('TextChangedI', {
    group = group,
    callback = function(args)
      local tick = vim.api.nvim_buf_get_changedtick(args.buf)
      -- asked_tick: typed keys and <M-\> in one go, TextChangedI comes after the asked-for request, which saw the change
      if own_tick[args.buf] == tick or asked_tick[args.buf] == tick or M.type_through(args.buf) then
        return
      end
      M.dismiss(args.buf)
      if M.auto(args.buf) then
        if lsp.get_client(args.buf) then
          schedule_trigger(args.buf)
        else
          trigger_on_attach(args.buf)
        end
      end
    end,
  })
  vim.api.nvim_create_autocmd('TextChanged', {
    group = group,
    callback = function(args)
      if own_tick[args.buf] ~= vim.api.nvim_buf_get_changedtick(args.buf) then
        M.dismiss(args.buf)
      end
    end,
  })
  vim.api.nvim_create_autocmd({ 'CursorMoved', 'CursorMovedI' }, {
    group = group,
    callback = function(args)
      local g = state[args.buf] or noted[args.buf]
      if g and not cursor_at(args.buf, g.row, g.col) and not (state[args.buf] and M.type_through(args.buf)) then
        M.dismiss(args.buf)
      end
    end,
  })
  vim.api.nvim_create_autocmd({ 'InsertLeave', 'BufLeave' }, {
    group = group,
    callback = function(args)
      stop_timer()
      M.dismiss(args.buf)
    end,
  })
  vim.api.nvim_create_autocmd('ColorScheme', { group = group, callback = require('diffusion_ls.highlights').set })
end

return M
