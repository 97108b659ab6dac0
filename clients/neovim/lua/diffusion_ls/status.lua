--- diffusion/status: what the server runs, what its model can do, and the :DiffusionStatus report.
local config = require('diffusion_ls.config')

local M = {}

---@type integer? the report's floating window (it may have been closed since)
M.win = nil

--- The last status each client answered: client id -> diffusion/status result.
---@type table<integer, table>
local last = {}

--- Ask the server for its status (answered at once, also while the model loads).
---@param client vim.lsp.Client
---@param cb fun(err: lsp.ResponseError?, result: table?)
function M.fetch(client, cb)
  client:request('diffusion/status', vim.empty_dict(), function(err, result)
    if not err and type(result) == 'table' then
      last[client.id] = result
    end
    cb(err, type(result) == 'table' and result or nil)
  end)
end

--- Read the status now, and again every `every_ms` while it says the model is still loading (at most `tries` times):
--- the statusline's language ratings come with the model, which loads in the background once the server starts
--- (and again when the settings name another).
---@param client vim.lsp.Client
---@param every_ms? integer
---@param tries? integer
function M.follow(client, every_ms, tries)
  every_ms, tries = every_ms or 2000, tries or 150
  M.fetch(client, function(_, s)
    pcall(vim.cmd.redrawstatus)
    local failed = s and s.error ~= nil and s.error ~= vim.NIL -- (a JSON null comes as vim.NIL)
    if s and (s.loaded ~= true or s.loading == true) and not failed and tries > 1 and not client:is_stopped() then
      vim.defer_fn(function()
        M.follow(client, every_ms, tries - 1)
      end, every_ms)
    end
  end)
end

--- The last status a client answered, if any.
---@param client vim.lsp.Client
---@return table?
function M.last(client)
  return last[client.id]
end

--- The model's capabilities, each true, false, or nil when the server does not say.
---@param s? table diffusion/status result
---@return { instructions: boolean?, streams: boolean?, maskToken: boolean?, nativeInfill: boolean? }
function M.capabilities(s)
  local caps = s and s.capabilities
  return type(caps) == 'table' and caps or {}
end

--- The model's name for messages.
---@param s? table
---@return string
function M.model_name(s)
  local name = s and (s.model or s.backend)
  return type(name) == 'string' and name or 'current'
end

local CAPABILITIES = {
  { 'instructions', 'instructions' }, { 'streams', 'streams' }, { 'maskToken', 'mask token' },
  { 'nativeInfill', 'native infill' },
}

---@param v any
---@return string
local function yes_no(v)
  return v == true and 'yes' or v == false and 'no' or '?'
end

--- How the model rates a buffer's language, or why the buffer gets no completions.
---@param s table
---@param filetype string
---@return string
function M.language(s, filetype)
  if filetype == '' then
    return 'no filetype'
  end
  if not vim.tbl_contains(config.get().filetypes, filetype) then
    return ('%s: not in the plugin\'s filetypes'):format(filetype)
  end
  local rating = type(s.languages) == 'table' and s.languages[filetype]
  local text = ('%s: %s'):format(filetype, type(rating) == 'string' and rating or 'not rated by this model')
  if rating == 'weak' then -- the weakLanguages setting decides whether it completes as you type: say which
    local mode = s.weakLanguages
    if mode == 'explicit' then
      text = text .. ', completes only when asked (weakLanguages)'
    elseif mode == 'off' then
      text = text .. ', never completes (weakLanguages)'
    end
  end
  return text
end

--- The repository context line: what the server's workspace index holds, or why the context is off; nil for a
--- server that does not say.
---@param r any the `repo` field of diffusion/status
---@return string?
local function repo_line(r)
  if type(r) ~= 'table' or type(r.budget) ~= 'number' then
    return nil
  end
  if r.budget <= 0 then
    return 'repo context  off' .. (type(r.off) == 'string' and (': ' .. r.off) or '')
  end
  local what
  if r.indexing == true then
    what = ('indexing: %s of %s files'):format(tostring(r.indexedFiles or '?'), tostring(r.totalFiles or '?'))
  elseif type(r.roots) == 'table' and #r.roots == 0 then
    what = 'no workspace folder to index'
  else
    -- `files` is what the index holds; `indexedFiles` counts the files walked, the skipped ones too (binary,
    -- generated, too large)
    local held = type(r.files) == 'number' and r.files or r.indexedFiles
    what = ('%s %s indexed'):format(tostring(held or '?'), held == 1 and 'file' or 'files')
    if type(r.files) == 'number' and type(r.totalFiles) == 'number' and r.totalFiles > r.files then
      what = what .. (', %d skipped'):format(r.totalFiles - r.files)
    end
  end
  return ('repo context  %d tokens, %s'):format(r.budget, what)
end

--- The files the index left out, with why (binary, too large, generated); nil when none or the server does not say.
---@param r any the `repo` field of diffusion/status
---@return string?
local function skipped_line(r)
  if type(r) ~= 'table' or type(r.budget) ~= 'number' or r.budget <= 0 or type(r.skipped) ~= 'table'
    or #r.skipped == 0 then
    return nil
  end
  local parts = {}
  for i, f in ipairs(r.skipped) do
    if i > 3 then
      break
    end
    if type(f) == 'table' and type(f.path) == 'string' then
      parts[#parts + 1] = type(f.why) == 'string' and ('%s (%s)'):format(f.path, f.why) or f.path
    end
  end
  local counted = type(r.files) == 'number' and type(r.totalFiles) == 'number' and r.totalFiles - r.files or 0
  local total = math.max(counted, #r.skipped)
  local text = table.concat(parts, ', ')
  if total > #parts then
    text = text .. (', +%d more'):format(total - #parts)
  end
  return 'skipped       ' .. text
end

local KINDS = { { 'definition', 'definition', 'definitions' }, { 'snippet', 'snippet', 'snippets' },
  { 'recent', 'recent edit', 'recent edits' } }

--- What the last fill was given of the repository: tokens, chunks by kind, and the files they came from (the first
--- three, best first); nil when the context is off or no fill has run yet.
---@param s table diffusion/status result
---@return string?
local function context_line(s)
  local r = s.repo
  if type(r) ~= 'table' or type(r.budget) ~= 'number' or r.budget <= 0 or type(s.lastLatencyMs) ~= 'number' then
    return nil
  end
  local c = s.repoContext
  if type(c) ~= 'table' then
    return 'last context  none'
  end
  local chunks = type(c.chunks) == 'table' and c.chunks or {}
  if (tonumber(c.tokens) or 0) == 0 or #chunks == 0 then
    return 'last context  nothing from the workspace'
  end
  local count, files, seen = {}, {}, {}
  for _, ch in ipairs(chunks) do
    if type(ch) == 'table' then
      count[ch.kind] = (count[ch.kind] or 0) + 1
      local path = type(ch.path) == 'string' and ch.path or nil
      if path and not seen[path] then
        seen[path] = true
        files[#files + 1] = path
      end
    end
  end
  local parts = {}
  for _, k in ipairs(KINDS) do
    local n = count[k[1]]
    if n then
      parts[#parts + 1] = ('%d %s'):format(n, n == 1 and k[2] or k[3])
    end
  end
  local shown = table.concat(vim.list_slice(files, 1, 3), ', ')
  if #files > 3 then
    shown = shown .. (', +%d more'):format(#files - 3)
  end
  return ('last context  %d tokens: %s from %s'):format(c.tokens, table.concat(parts, ', '), shown)
end

--- The report's lines: a short table of what the server says.
---@param s table diffusion/status result
---@param filetype string the current buffer's filetype (its language id)
---@return string[]
function M.lines(s, filetype)
  local function str(v)
    return (v == nil or v == vim.NIL) and '?' or tostring(v)
  end
  local loaded = s.loaded and 'yes' or s.loading and 'loading...' or 'no'
  if s.error and s.error ~= vim.NIL then
    loaded = 'no: ' .. tostring(s.error)
  end
  local last_fill = 'none yet'
  if type(s.lastLatencyMs) == 'number' then
    last_fill = ('%.0f ms'):format(s.lastLatencyMs)
    if type(s.tokensPerForward) == 'number' then
      last_fill = last_fill .. (', %.2f tokens/forward'):format(s.tokensPerForward)
    end
    if type(s.nfe) == 'number' then
      last_fill = last_fill .. (', %d forwards'):format(s.nfe)
    end
    if type(s.minConfidence) == 'number' then -- as you type, fills under the minConfidence setting are not shown
      last_fill = last_fill .. (', least sure token %.2f'):format(s.minConfidence)
    end
    if type(s.lastRefused) == 'string' then -- shown nothing: as you type, nothing else says why
      last_fill = last_fill .. '; refused: ' .. s.lastRefused
    end
  end
  local caps = M.capabilities(s)
  local cap_text = {}
  if next(caps) == nil then
    cap_text[1] = s.loaded and 'not reported by the server' or 'known once the model is loaded'
  else
    for _, c in ipairs(CAPABILITIES) do
      cap_text[#cap_text + 1] = ('%s %s'):format(c[2], yes_no(caps[c[1]]))
    end
  end
  local lines = {
    'backend       ' .. str(s.backend),
    'model         ' .. str(s.model),
    'device        ' .. str(s.device) .. (type(s.memoryFormat) == 'string' and (' (' .. s.memoryFormat .. ')') or ''),
    'loaded        ' .. loaded,
    'last fill     ' .. last_fill,
    'capabilities  ' .. table.concat(cap_text, ', '),
    'this buffer   ' .. M.language(s, filetype),
  }
  lines[#lines + 1] = repo_line(s.repo)
  lines[#lines + 1] = context_line(s)
  lines[#lines + 1] = skipped_line(s.repo)
  local lsp = require('diffusion_ls.lsp')
  local said = lsp.last_message
  if said then -- a refusal's whole reason, shortened on the command line; how long ago, as it may be fixed since
    local ago = math.floor((vim.uv.now() - (lsp.last_message_ms or vim.uv.now())) / 1000)
    lines[#lines + 1] = 'last message  ' .. ago .. ' s ago: ' .. said:gsub('%s*\n%s*', '; ')
  end
  return lines
end

--- Show the report in a floating window next to the cursor (closed by moving the cursor; a second :DiffusionStatus
--- enters it, and `q` there closes it).
---@param lines string[]
---@param title string
---@return integer bufnr, integer winid
function M.show(lines, title)
  local bufnr, winid = vim.lsp.util.open_floating_preview(lines, '', {
    border = 'rounded',
    title = ' ' .. title .. ' ',
    title_pos = 'center',
    focus_id = 'diffusion_ls_status',
    close_events = { 'CursorMoved', 'CursorMovedI', 'InsertEnter', 'BufLeave' },
  })
  M.win = winid
  return bufnr, winid
end

--- :DiffusionStatus: ask the running server and show the report.
function M.report()
  -- open already: enter it now. Asking the server first would answer after the command line is left, and leaving
  -- it moves the cursor, which closes the window.
  if M.win and vim.api.nvim_win_is_valid(M.win) and vim.api.nvim_get_current_win() ~= M.win then
    vim.api.nvim_set_current_win(M.win)
    return
  end
  local lsp = require('diffusion_ls.lsp')
  local client = lsp.get_client()
  if not client then
    if lsp.starting() then
      vim.notify('diffusion-ls: starting (the server has not answered yet); ask again in a moment', vim.log.levels.INFO)
    elseif lsp.exited and lsp.exited.ran then -- it ran, then stopped (:LspStop, a crash)
      local e = lsp.exited
      vim.notify(('diffusion-ls: not running: the server stopped (code %d%s); it starts again with a buffer of a '
        .. 'configured filetype (:edit)'):format(e.code or -1, (e.signal or 0) ~= 0 and (', signal ' .. e.signal) or ''),
        vim.log.levels.WARN)
    elseif lsp.exited then -- it started and ended before it answered: a `cmd` that is not the server
      local e = lsp.exited
      vim.notify(('diffusion-ls: not running: `%s` exited (code %d%s); check `cmd` and :checkhealth diffusion_ls')
        :format(e.cmd, e.code or -1, (e.signal or 0) ~= 0 and (', signal ' .. e.signal) or ''), vim.log.levels.WARN)
    else
      vim.notify('diffusion-ls: not running (it starts with a buffer of a configured filetype)', vim.log.levels.WARN)
    end
    return
  end
  local filetype = vim.bo.filetype
  M.fetch(client, function(err, s)
    if err or not s then
      local why = err and err.message or 'no answer'
      vim.notify('diffusion-ls: diffusion/status failed: ' .. why, vim.log.levels.ERROR)
      return
    end
    local title = 'diffusion-ls' .. (type(s.serverVersion) == 'string' and ' ' .. s.serverVersion or '')
    M.show(M.lines(s, filetype), title)
  end)
end

return M
