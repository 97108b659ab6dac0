--- Select-and-rewrite with a streamed preview, and filling every placeholder (diffusion/infill) with a preview; each
--- changes the buffer only on accept.
local config = require('diffusion_ls.config')
local ghost = require('diffusion_ls.ghost')
local lsp = require('diffusion_ls.lsp')
local status = require('diffusion_ls.status')

local M = {}

local INVALID_PARAMS = -32602 -- JSON-RPC: the server cannot take the request as asked, and says why

M.ns = vim.api.nvim_create_namespace('diffusion_ls.rewrite')
--- The placeholders a fill kept, each a diagnostic whose message is why (]d, [d and vim.diagnostic.open_float go
--- through them), until the buffer changes, the fill is rejected or the next one starts.
M.kept_ns = vim.api.nvim_create_namespace('diffusion_ls.kept')

require('diffusion_ls.highlights').set()

---@class diffusion_ls.Selection
---@field srow integer 0-based
---@field scol integer byte column
---@field erow integer
---@field ecol integer byte column, exclusive

---@class diffusion_ls.Part one range of the buffer and the text it becomes
---@field sel diffusion_ls.Selection
---@field text string the new text so far (final once the preview's `edits` are set)
---@field masks? integer[][] still-masked ranges of `text` (UTF-16 code units)

---@class diffusion_ls.Preview a rewrite (one part) or a fill (a part per placeholder), shown until accepted or rejected
---@field kind 'rewrite'|'fill'
---@field req? diffusion_ls.Request
---@field parts diffusion_ls.Part[] what is drawn; a fill has none until its answer
---@field edits? lsp.TextEdit[] the result, applied on accept
---@field refused? string the server refused the result (the last canvas said why); nothing is drawn
---@field step integer

---@type table<integer, diffusion_ls.Preview>
local previews = {}

--- A buffer number, 0 or nil meaning the current buffer.
---@param bufnr? integer
---@return integer
local function buf(bufnr)
  return (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
end

--- The selection a command was given: the last visual selection (characterwise when it was `v`), else whole lines.
---@param bufnr integer
---@param line1 integer 1-based
---@param line2 integer
---@param visual? boolean the range came from a visual selection ('<,'>)
---@return diffusion_ls.Selection
function M.selection(bufnr, line1, line2, visual)
  local vs, ve = vim.api.nvim_buf_get_mark(bufnr, '<'), vim.api.nvim_buf_get_mark(bufnr, '>')
  local last = vim.api.nvim_buf_get_lines(bufnr, line2 - 1, line2, false)[1] or ''
  if visual and vim.fn.visualmode() == 'v' and vs[1] == line1 and ve[1] == line2 and vs[1] > 0 then
    -- '> is the start byte of the last selected character (or MAXCOL after `$`).
    local ecol = math.min(ve[2], #last)
    if ecol < #last then
      ecol = ecol + #vim.fn.strcharpart(last:sub(ecol + 1), 0, 1)
    end
    return { srow = line1 - 1, scol = vs[2], erow = line2 - 1, ecol = ecol }
  end
  return { srow = line1 - 1, scol = 0, erow = line2 - 1, ecol = #last }
end

---@param bufnr integer
---@param sel diffusion_ls.Selection
---@param enc string
---@return lsp.Range
local function lsp_range(bufnr, sel, enc)
  return { start = lsp.to_lsp(bufnr, sel.srow, sel.scol, enc), ['end'] = lsp.to_lsp(bufnr, sel.erow, sel.ecol, enc) }
end

--- How to accept or reject a preview, by the keys the user has.
---@return string
local function keys()
  local km = config.get().keymaps
  return ('%s accept, %s reject'):format(km.rewrite_accept or ':DiffusionAccept', km.rewrite_reject or ':DiffusionReject')
end

--- Draw one part: its range marked as removed, the lines it becomes as virtual lines below it, `hint` at their end.
---@param bufnr integer
---@param part diffusion_ls.Part
---@param hint string
local function render_part(bufnr, part, hint)
  local sel = part.sel
  local first = vim.api.nvim_buf_get_lines(bufnr, sel.srow, sel.srow + 1, false)[1] or ''
  local last = vim.api.nvim_buf_get_lines(bufnr, sel.erow, sel.erow + 1, false)[1] or ''
  local prefix, suffix = first:sub(1, sel.scol), last:sub(sel.ecol + 1)
  local shift = vim.str_utfindex(prefix, 'utf-16')
  local masks = {}
  for _, m in ipairs(part.masks or {}) do
    masks[#masks + 1] = { m[1] + shift, m[2] + shift }
  end
  local lines = ghost.chunks(prefix .. part.text .. suffix, masks, 'DiffusionLsAdded', 'DiffusionLsMasked')
  for i, chunks in ipairs(lines) do
    if #chunks == 0 then
      lines[i] = { { '', 'DiffusionLsAdded' } }
    end
  end
  vim.api.nvim_buf_set_extmark(bufnr, M.ns, sel.srow, sel.scol, {
    end_row = sel.erow,
    end_col = sel.ecol,
    hl_group = 'DiffusionLsRemoved',
    hl_eol = true,
    priority = 200,
  })
  vim.api.nvim_buf_set_extmark(bufnr, M.ns, sel.erow, 0, {
    virt_lines = lines,
    virt_text = { { hint, 'DiffusionLsHint' } },
    virt_text_pos = 'eol',
  })
end

--- Draw the preview: every part, each with what to do with it.
---@param bufnr integer
---@param p diffusion_ls.Preview
local function render(bufnr, p)
  vim.api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  for i, part in ipairs(p.parts) do
    local hint
    if p.kind == 'fill' then -- every placeholder says it, as the fills may be screens apart
      hint = (' fill %d of %d: %s (all of them)'):format(i, #p.parts, keys())
    elseif p.edits then
      hint = ' rewrite ready: ' .. keys()
    else
      hint = (' rewriting... step %d'):format(p.step)
    end
    render_part(bufnr, part, hint)
  end
end

--- Remove the preview of a buffer and cancel its request; the buffer is untouched.
---@param bufnr? integer
---@return boolean had_preview
function M.reject(bufnr)
  bufnr = buf(bufnr)
  local p = previews[bufnr]
  previews[bufnr] = nil
  if p then
    lsp.cancel(p.req)
    if p.kind == 'fill' and not p.edits then
      vim.api.nvim_echo({ { '' } }, false, {}) -- its "filling, step N"
    end
  end
  if vim.api.nvim_buf_is_valid(bufnr) then
    vim.api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
    if p and p.kind == 'fill' then
      vim.diagnostic.reset(M.kept_ns, bufnr)
    end
  end
  return p ~= nil
end

--- Apply the finished rewrite or fill as one undoable change.
---@param bufnr? integer
---@return boolean applied
function M.accept(bufnr)
  bufnr = buf(bufnr)
  local p = previews[bufnr]
  if not p then
    return false
  end
  if not p.edits then
    lsp.say(('diffusion-ls: the %s is still running'):format(p.kind), vim.log.levels.WARN)
    return false
  end
  if not lsp.is_current(p.req) then
    M.reject(bufnr)
    lsp.say(('diffusion-ls: the buffer changed, %s dropped'):format(p.kind), vim.log.levels.WARN)
    return false
  end
  M.reject(bufnr)
  vim.api.nvim_echo({ { '' } }, false, {}) -- the report that offered it is done with
  vim.go.undolevels = vim.go.undolevels -- close the undo block: the edit is one undo step
  vim.lsp.util.apply_text_edits(p.edits, bufnr, p.req.client.offset_encoding)
  return true
end

---@param bufnr integer
---@return boolean
function M.has_preview(bufnr)
  return previews[buf(bufnr)] ~= nil
end

--- A JSON null in a result (vim.NIL) as nil.
local function value(v)
  if v == vim.NIL then
    return nil
  end
  return v
end

--- Mark the placeholders a fill kept, the reason in each diagnostic's message, until the buffer changes (the report
--- on the command line lists a few line numbers per reason; these are every one, in place).
---@param bufnr integer
---@param kept { range: lsp.Range, reason: string }[]
---@param enc string the client's offset encoding
local function mark_kept(bufnr, kept, enc)
  local items = {}
  for _, k in ipairs(kept) do
    if type(value(k.range)) == 'table' and k.range.start and k.range['end'] then
      local srow, scol = lsp.to_byte(bufnr, k.range.start, enc)
      local erow, ecol = lsp.to_byte(bufnr, k.range['end'], enc)
      items[#items + 1] = {
        lnum = srow, col = scol, end_lnum = erow, end_col = ecol, severity = vim.diagnostic.severity.INFO,
        source = 'diffusion-ls', message = 'placeholder kept: ' .. (type(value(k.reason)) == 'string' and k.reason
          or 'no reason given'),
      }
    end
  end
  vim.diagnostic.set(M.kept_ns, bufnr, items)
  if #items > 0 then
    vim.api.nvim_create_autocmd({ 'TextChanged', 'TextChangedI' }, {
      buffer = bufnr,
      once = true,
      callback = function()
        vim.diagnostic.reset(M.kept_ns, bufnr)
      end,
    })
  end
end

--- Send the rewrite of the selection: stream the new text as a preview; the buffer changes only on accept.
--- A refused rewrite (`edit` null) clears the preview and says why.
---@param bufnr integer
---@param sel diffusion_ls.Selection
---@param instruction? string sent as is ('' or nil: none)
---@param mode? string 'regenerate' or 'refine' (nil: the rewrite_mode option)
function M.start(bufnr, sel, instruction, mode)
  bufnr = buf(bufnr)
  M.reject(bufnr)
  ghost.dismiss(bufnr)
  lsp.with_client(bufnr, function(client)
    M.reject(bufnr)
    local enc = client.offset_encoding
    local params = {
      textDocument = vim.lsp.util.make_text_document_params(bufnr),
      range = lsp_range(bufnr, sel, enc),
      mode = mode or config.get().rewrite_mode,
      instruction = instruction ~= '' and instruction or nil,
    }
    ---@type diffusion_ls.Preview
    local p = { kind = 'rewrite', parts = { { sel = sel, text = '' } }, step = 0 }
    previews[bufnr] = p
    local function mine(req, version)
      return previews[bufnr] == p and lsp.is_current(req, version)
    end
    p.req = lsp.request(client, bufnr, 'diffusion/rewrite', params, function(err, result, req)
      if not mine(req, result and result.version) then
        if previews[bufnr] == p then
          M.reject(bufnr)
        end
        return
      end
      local part = p.parts[1]
      if err or not result or not value(result.edit) then
        M.reject(bufnr)
        if err and err.code == INVALID_PARAMS then -- a request the server says why it cannot take (select less)
          lsp.say('diffusion-ls: cannot rewrite: ' .. (err.message or ''), vim.log.levels.WARN)
        elseif err and err.code ~= -32800 then
          lsp.say('diffusion-ls: rewrite failed: ' .. (err.message or ''), vim.log.levels.ERROR)
        elseif result and not err then
          local reason = value(result.reason) or p.refused or 'no edit'
          lsp.say('diffusion-ls: rewrite refused: ' .. tostring(reason), vim.log.levels.WARN)
        end
        vim.api.nvim_exec_autocmds('User', {
          pattern = 'DiffusionLsRewriteRefused',
          modeline = false,
          data = { bufnr = bufnr, id = req.id, reason = result and value(result.reason), error = err },
        })
        return
      end
      p.edits, part.text, part.masks = { result.edit }, result.edit.newText, nil
      render(bufnr, p)
      vim.api.nvim_exec_autocmds('User', {
        pattern = 'DiffusionLsRewriteResult',
        modeline = false,
        data = { bufnr = bufnr, id = req.id, edit = result.edit },
      })
    end, function(canvas, req)
      if p.edits or not mine(req, canvas.version) then
        return
      end
      p.parts[1].text, p.parts[1].masks, p.step = canvas.text, canvas.masks, canvas.step
      if canvas.done and type(value(canvas.reason)) == 'string' then
        -- Refused: not shown as a result; the preview stays empty until the answer says why.
        p.refused = canvas.reason
        vim.api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
      elseif config.get().stream or canvas.done then
        render(bufnr, p)
      end
      vim.api.nvim_exec_autocmds('User', {
        pattern = 'DiffusionLsRewriteCanvas',
        modeline = false,
        data = {
          bufnr = bufnr, id = req.id, step = canvas.step, done = canvas.done, text = canvas.text, masks = canvas.masks,
          reason = value(canvas.reason),
        },
      })
    end)
    if not p.req then
      M.reject(bufnr)
    end
  end)
end

--- Models whose "does not follow instructions" was said already (said once per model).
---@type table<string, boolean>
local told_no_instructions = {}

--- Rewrite the selection, as :DiffusionRewrite and the Visual mode key do. The instruction is asked for (an empty
--- answer: none) only when the model follows instructions (diffusion/status `capabilities.instructions`); one given to
--- a model that does not is dropped, saying so once.
---@param bufnr integer
---@param sel diffusion_ls.Selection
---@param instruction? string nil or '': none given
---@param mode? string 'regenerate' or 'refine' (nil: the rewrite_mode option)
function M.rewrite(bufnr, sel, instruction, mode)
  bufnr, instruction = buf(bufnr), instruction or ''
  lsp.with_client(bufnr, function(client)
    local tick = vim.api.nvim_buf_get_changedtick(bufnr)
    status.fetch(client, function(_, s)
      local follows = status.capabilities(s).instructions
      if follows == true and instruction == '' then
        vim.ui.input({ prompt = 'Rewrite instruction (empty: none): ' }, function(input)
          if input == nil then
            return -- cancelled
          end
          if not vim.api.nvim_buf_is_valid(bufnr) or vim.api.nvim_buf_get_changedtick(bufnr) ~= tick then
            lsp.say('diffusion-ls: the buffer changed, rewrite not started', vim.log.levels.WARN)
            return
          end
          M.start(bufnr, sel, input, mode)
        end)
        return
      end
      if follows == false and instruction ~= '' then
        local model = status.model_name(s)
        if not told_no_instructions[model] then
          told_no_instructions[model] = true
          lsp.say(('diffusion-ls: the %s model does not follow instructions; the instruction is ignored'):format(
            model), vim.log.levels.WARN)
        end
        instruction = ''
      end
      if vim.api.nvim_buf_is_valid(bufnr) and vim.api.nvim_buf_get_changedtick(bufnr) == tick then
        M.start(bufnr, sel, instruction, mode)
      end
    end)
  end)
end

--- The server's `diffusion.rewrite` command, from a code action: its range rewritten with the preview.
---@param command lsp.Command arguments: { { textDocument = { uri }, range, mode? } }
---@param ctx { client_id: integer }
function M.code_action(command, ctx)
  local a = type(command.arguments) == 'table' and command.arguments[1] or nil
  local client = vim.lsp.get_client_by_id(ctx.client_id)
  if type(a) ~= 'table' or type(a.textDocument) ~= 'table' or type(a.range) ~= 'table' or not client then
    return
  end
  if vim.api.nvim_get_mode().mode:match('^[vVsS\22\19]') then
    -- chosen from `gra` in Visual mode: leave it, as :DiffusionRewrite does (in it, Neovim handled the server's answers
    -- only at the next key or after 'updatetime': a rewrite started seconds late, its preview drawn stale)
    vim.api.nvim_feedkeys(vim.keycode('<Esc>'), 'nx', false)
  end
  local bufnr = vim.uri_to_bufnr(a.textDocument.uri)
  local srow, scol = lsp.to_byte(bufnr, a.range.start, client.offset_encoding)
  local erow, ecol = lsp.to_byte(bufnr, a.range['end'], client.offset_encoding)
  M.rewrite(bufnr, { srow = srow, scol = scol, erow = erow, ecol = ecol }, nil, type(a.mode) == 'string' and a.mode or nil)
end

local FILL_LINES = 6 -- line numbers listed per reason in a fill's report

--- Line numbers, at most FILL_LINES of them and how many more.
---@param l integer[]
---@return string
local function listed(l)
  local shown = table.concat(vim.list_slice(l, 1, FILL_LINES), ', ')
  return #l > FILL_LINES and ('%s and %d more'):format(shown, #l - FILL_LINES) or shown
end

--- The fill's report: how many placeholders were filled (shown to accept or reject), and which were kept as they were,
--- and why.
---@param filled integer[] the 1-based lines of the placeholders filled
---@param kept { range: lsp.Range, reason: string }[]
---@return string message, integer level
function M.fill_message(filled, kept)
  local total = #filled + #kept
  if total == 0 then
    return 'diffusion-ls: no placeholder to fill', vim.log.levels.INFO
  end
  -- where the fills are: a fill of the whole buffer previews placeholders off screen
  local at = ('(line%s %s)'):format(#filled > 1 and 's' or '', listed(filled))
  local head = #filled == 0 and ('diffusion-ls: filled none of %d placeholder%s'):format(total, total == 1 and '' or 's')
    or ('diffusion-ls: filled %s placeholder%s %s: %s'):format(
      #kept == 0 and tostring(#filled) or ('%d of %d'):format(#filled, total), total == 1 and '' or 's', at, keys())
  if #kept == 0 then
    return head, vim.log.levels.INFO
  end
  local reasons, lines = {}, {} ---@type string[], table<string, integer[]>
  for _, k in ipairs(kept) do
    local reason = type(value(k.reason)) == 'string' and k.reason or 'no reason given'
    if not lines[reason] then
      reasons[#reasons + 1] = reason
      lines[reason] = {}
    end
    local l = lines[reason]
    l[#l + 1] = k.range and k.range.start and k.range.start.line + 1 or nil
  end
  -- the commonest reason first, a few lines each: hundreds of placeholders kept for another request must not hide
  -- behind the line numbers of another reason
  local order = {} ---@type table<string, integer>
  for i, reason in ipairs(reasons) do
    order[reason] = i
  end
  table.sort(reasons, function(a, b)
    return #lines[a] ~= #lines[b] and #lines[a] > #lines[b] or #lines[a] == #lines[b] and order[a] < order[b]
  end)
  local parts = {}
  for _, reason in ipairs(reasons) do
    local l = lines[reason]
    parts[#parts + 1] = #l == 0 and reason or ('%s (line%s %s)'):format(reason, #l > 1 and 's' or '', listed(l))
  end
  return ('%s; kept %d: %s'):format(head, #kept, table.concat(parts, '; ')), vim.log.levels.WARN
end

--- Fill every placeholder (`...`, a lone `pass`, TODO markers) in the buffer or the selection, a canvas each. The
--- fills are shown as a preview, each placeholder marked as removed and its fill below it; nothing changes in the
--- buffer until accept, which applies them all as one undoable change.
---@param bufnr integer
---@param sel? diffusion_ls.Selection
function M.fill(bufnr, sel)
  bufnr = buf(bufnr)
  M.reject(bufnr)
  vim.diagnostic.reset(M.kept_ns, bufnr) -- the last fill's kept placeholders
  ghost.dismiss(bufnr)
  lsp.with_client(bufnr, function(client)
    M.reject(bufnr)
    local enc = client.offset_encoding
    local params = { textDocument = vim.lsp.util.make_text_document_params(bufnr) }
    if sel then
      params.ranges = { lsp_range(bufnr, sel, enc) }
    end
    ---@type diffusion_ls.Preview
    local p = { kind = 'fill', parts = {}, step = 0 }
    previews[bufnr] = p
    local function drop()
      if previews[bufnr] == p then
        M.reject(bufnr)
      end
    end
    p.req = lsp.request(client, bufnr, 'diffusion/infill', params, function(err, result, req)
      if previews[bufnr] ~= p then
        return -- rejected, or replaced by another rewrite or fill
      end
      vim.api.nvim_echo({ { '' } }, false, {})
      if err then
        drop()
        if err.code ~= -32800 then -- not cancelled
          local invalid = err.code == INVALID_PARAMS -- nothing to fill there: the user's to change, not a failure
          lsp.say('diffusion-ls: ' .. (invalid and '' or 'fill failed: ') .. (err.message or ''),
            invalid and vim.log.levels.WARN or vim.log.levels.ERROR)
        end
        return
      end
      if not result or not lsp.is_current(req, result.version) then
        drop()
        lsp.say('diffusion-ls: the buffer changed, fill dropped', vim.log.levels.WARN)
        return
      end
      local edits = type(value(result.edits)) == 'table' and result.edits or {}
      local kept = type(value(result.kept)) == 'table' and result.kept or {}
      local filled = {} ---@type integer[]
      for _, e in ipairs(edits) do
        filled[#filled + 1] = e.range.start.line + 1
      end
      if #edits > 0 then
        p.edits = edits
        for _, e in ipairs(edits) do
          local srow, scol = lsp.to_byte(bufnr, e.range.start, enc)
          local erow, ecol = lsp.to_byte(bufnr, e.range['end'], enc)
          p.parts[#p.parts + 1] = { sel = { srow = srow, scol = scol, erow = erow, ecol = ecol }, text = e.newText }
        end
        render(bufnr, p)
      else
        drop()
      end
      mark_kept(bufnr, kept, enc) -- after drop(), which clears a fill's marks
      lsp.say(M.fill_message(filled, kept))
      vim.api.nvim_exec_autocmds('User', {
        pattern = 'DiffusionLsFillResult',
        modeline = false,
        data = { bufnr = bufnr, id = req.id, edits = edits, kept = kept },
      })
    end, function(canvas, req)
      if previews[bufnr] == p and lsp.is_current(req, canvas.version) then
        local msg = ('diffusion-ls: filling, step %d (%s to stop)'):format(canvas.step or 0,
          config.get().keymaps.rewrite_reject or ':DiffusionReject')
        vim.api.nvim_echo({ { msg, 'DiffusionLsHint' } }, false, {})
      end
    end)
    if not p.req then
      drop()
    end
  end)
end

local mapped = {} ---@type string[][]

function M.setup()
  for _, m in ipairs(mapped) do
    pcall(vim.keymap.del, m[1], m[2])
  end
  mapped = {}
  local km = config.get().keymaps
  local function map(mode, lhs, rhs, desc)
    if lhs then
      vim.keymap.set(mode, lhs, rhs, { silent = true, desc = 'diffusion_ls: ' .. desc })
      for _, m in ipairs(type(mode) == 'table' and mode or { mode }) do
        mapped[#mapped + 1] = { m, lhs }
      end
    end
  end
  map('x', km.rewrite, ':DiffusionRewrite<CR>', 'rewrite the selection')
  map('n', km.rewrite_accept, '<Cmd>DiffusionAccept<CR>', 'accept the rewrite or fill')
  map('n', km.rewrite_reject, '<Cmd>DiffusionReject<CR>', 'reject the rewrite or fill')
  map('n', km.fill, '<Cmd>DiffusionFill<CR>', 'fill every placeholder in the buffer')
  map('x', km.fill, ':DiffusionFill<CR>', 'fill every placeholder in the selection')

  -- A code action's rewrite runs the server's `diffusion.rewrite`, which would apply the edit at once: Neovim runs a
  -- command registered here instead of sending it, so it goes through the preview, as :DiffusionRewrite does.
  vim.lsp.commands['diffusion.rewrite'] = M.code_action

  local group = vim.api.nvim_create_augroup('diffusion_ls.rewrite', { clear = true })
  vim.api.nvim_create_autocmd({ 'TextChanged', 'TextChangedI' }, {
    group = group,
    callback = function(args)
      local p = previews[args.buf]
      if p and p.req and vim.api.nvim_buf_get_changedtick(args.buf) ~= p.req.tick then
        M.reject(args.buf)
      end
    end,
  })
end

return M
