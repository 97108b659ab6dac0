--- The diffusion-ls client: start or attach the server, send requests, route diffusion/canvas notifications.
local config = require('diffusion_ls.config')

local M = {}

M.name = 'diffusion_ls'

--- Canvas listeners: client id -> JSON-RPC request id -> function(canvas).
---@type table<integer, table<integer, fun(canvas: table)>>
local listeners = {}

---@param ctx lsp.HandlerContext
local function on_canvas(_, canvas, ctx)
  local by_id = listeners[ctx.client_id]
  local listener = by_id and canvas and by_id[canvas.id]
  if listener then
    listener(canvas)
  end
end

--- The last message `say` gave, whole, when it had to shorten it (:DiffusionStatus shows it); nil otherwise.
---@type string?
M.last_message = nil
--- When it was given (vim.uv.now(), ms): the report says how long ago, as the problem may be fixed since.
---@type integer?
M.last_message_ms = nil

--- Tell the user on one line of the command line: a longer or multi-line message stops the editor at a "Press
--- ENTER" prompt while a stale preview stays drawn. A shortened message is kept whole for :DiffusionStatus, and
--- says so.
---@param msg string
---@param level? integer vim.log.levels
function M.say(msg, level)
  local line = msg:gsub('%s*\n%s*', '; ')
  local room = math.max(20, (vim.v.echospace > 0 and vim.v.echospace or vim.o.columns - 12) - 1)
  M.last_message = nil
  if vim.fn.strdisplaywidth(line) > room then
    M.last_message, M.last_message_ms = msg, vim.uv.now()
    local rest = ' (all: :DiffusionStatus)' -- where the whole of it is: :messages has only this line
    local cut = vim.fn.strcharpart(line, 0, room - 1 - #rest)
    while vim.fn.strdisplaywidth(cut) > room - 1 - #rest do -- wide characters take two cells
      cut = vim.fn.strcharpart(cut, 0, vim.fn.strchars(cut) - 1)
    end
    line = cut .. '…' .. rest
  end
  vim.notify(line, level)
end

---@return lsp.ClientCapabilities
local function capabilities()
  local caps = vim.lsp.protocol.make_client_capabilities()
  caps.textDocument.inlineCompletion = { dynamicRegistration = false }
  return caps
end

--- Settings as they go out: always a JSON object (an empty Lua table would be encoded as the array `[]`).
---@param settings table
---@return table
function M.settings_object(settings)
  return next(settings) == nil and vim.empty_dict() or settings
end

--- The client configuration for vim.lsp.start.
---@param bufnr integer
---@return vim.lsp.ClientConfig
function M.client_config(bufnr)
  local cfg = config.get()
  return {
    name = M.name,
    cmd = cfg.cmd,
    root_dir = vim.fs.root(bufnr, cfg.root_markers) or vim.fn.getcwd(),
    init_options = M.settings_object(cfg.server_settings),
    capabilities = capabilities(),
    handlers = { ['diffusion/canvas'] = on_canvas },
    -- the model's ratings and the weakLanguages setting, for the statusline (which asks the server nothing)
    on_init = function(client)
      require('diffusion_ls.status').follow(client)
    end,
    on_exit = function(code, signal, client_id)
      listeners[client_id] = nil
      local client = vim.lsp.get_client_by_id(client_id)
      M.exited = { code = code, signal = signal, cmd = table.concat(cfg.cmd, ' '),
                   ran = client ~= nil and client.initialized == true }
    end,
  }
end

--- The initialized diffusion_ls client attached to the buffer (or any one when bufnr is nil).
---@param bufnr? integer
---@return vim.lsp.Client?
function M.get_client(bufnr)
  return vim.lsp.get_clients({ name = M.name, bufnr = bufnr })[1]
end

local started ---@type vim.lsp.Client? the client last started, until it has initialized

--- Start the server (once per Neovim) or attach the running one to the buffer.
---@param bufnr integer
---@return vim.lsp.Client?
function M.attach(bufnr)
  if vim.bo[bufnr].buftype ~= '' then
    return nil
  end
  local id = vim.lsp.start(M.client_config(bufnr), { bufnr = bufnr, reuse_client = M.reuse_client })
  local client = id and vim.lsp.get_client_by_id(id) or nil
  if client and not client.initialized then
    started = client
  end
  return client
end

--- How the last server process ended ({ code, signal, cmd, ran: it had answered `initialize` }), for a report
--- when none runs; nil if none ended.
---@type table?
M.exited = nil

--- Whether the server has been started and has not answered `initialize` yet (vim.lsp.get_clients() lists a client
--- only once it has).
---@return boolean
function M.starting()
  return started ~= nil and not started.initialized and not started:is_stopped()
end

--- One server for every project: the model is loaded once.
---@param client vim.lsp.Client
---@param conf vim.lsp.ClientConfig
function M.reuse_client(client, conf)
  return client.name == conf.name and not client:is_stopped()
end

--- Call fn(client) once the client is initialized and the buffer is open on the server (now, or on LspAttach).
---@param bufnr integer
---@param fn fun(client: vim.lsp.Client)
function M.with_client(bufnr, fn)
  if vim.bo[bufnr].buftype ~= '' then
    vim.notify('diffusion-ls: not a file buffer', vim.log.levels.WARN)
    return
  end
  local client = M.get_client(bufnr) or M.attach(bufnr)
  if not client then
    vim.notify('diffusion-ls: cannot start ' .. table.concat(config.get().cmd, ' '), vim.log.levels.ERROR)
    return
  end
  if client.initialized and client.attached_buffers[bufnr] then
    fn(client)
    return
  end
  vim.api.nvim_create_autocmd('LspAttach', {
    buffer = bufnr,
    callback = function(args)
      if args.data.client_id ~= client.id then
        return false
      end
      fn(client)
      return true -- delete this autocmd
    end,
  })
end

--- Attach automatically to buffers of the configured filetypes.
function M.setup()
  local group = vim.api.nvim_create_augroup('diffusion_ls.lsp', { clear = true })
  local filetypes = config.get().filetypes
  -- setup() again with other server_settings: a running server gets them now (it started with the old ones). The
  -- server reads a change as a partial update, so a setting left out this time goes as null: back to its default.
  local settings = M.settings_object(config.get().server_settings)
  for _, client in ipairs(vim.lsp.get_clients({ name = M.name })) do
    local old = client.config.init_options or {}
    if not vim.deep_equal(old, settings) then
      local change = vim.deepcopy(settings)
      for key in pairs(old) do
        if settings[key] == nil then
          change[key] = vim.NIL
        end
      end
      client.config.init_options = settings
      client:notify('workspace/didChangeConfiguration', { settings = M.settings_object(change) })
      require('diffusion_ls.status').follow(client) -- another model may load
    end
  end
  vim.api.nvim_create_autocmd('FileType', {
    group = group,
    pattern = filetypes,
    callback = function(args)
      M.attach(args.buf)
    end,
  })
  for _, buf in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(buf) and vim.tbl_contains(filetypes, vim.bo[buf].filetype) then
      M.attach(buf)
    end
  end
end

---@class diffusion_ls.Request
---@field client vim.lsp.Client
---@field id integer JSON-RPC request id; diffusion/canvas notifications carry it
---@field bufnr integer
---@field tick integer b:changedtick when sent
---@field version integer document version sent to the server
---@field done? boolean answered
---@field cancelled? boolean

--- Send a request whose progress streams as diffusion/canvas notifications.
---@param client vim.lsp.Client
---@param bufnr integer
---@param method string
---@param params table
---@param on_result fun(err: lsp.ResponseError?, result: any, req: diffusion_ls.Request)
---@param on_canvas? fun(canvas: table, req: diffusion_ls.Request)
---@return diffusion_ls.Request?
function M.request(client, bufnr, method, params, on_result, on_canvas)
  ---@type diffusion_ls.Request
  local req = { client = client, bufnr = bufnr, tick = vim.api.nvim_buf_get_changedtick(bufnr) }
  local ok, id = client:request(method, params, function(err, result, ctx)
    if listeners[client.id] then
      listeners[client.id][req.id] = nil
    end
    req.done = true
    on_result(err, result, req)
  end, bufnr)
  if not ok or not id then
    return nil
  end
  req.id = id
  req.version = vim.lsp.util.buf_versions[bufnr]
  if on_canvas and not req.done then
    listeners[client.id] = listeners[client.id] or {}
    listeners[client.id][id] = function(canvas)
      on_canvas(canvas, req)
    end
  end
  return req
end

--- Cancel a request (no-op once it has been answered); its handlers are not called with its results.
---@param req? diffusion_ls.Request
function M.cancel(req)
  if not req or req.cancelled then
    return
  end
  req.cancelled = true
  if listeners[req.client.id] then
    listeners[req.client.id][req.id] = nil
  end
  if not req.done and not req.client:is_stopped() then
    req.client:cancel_request(req.id)
  end
end

--- True when the buffer has not changed since the request was sent.
---@param req diffusion_ls.Request
---@param version? integer the document version a canvas or result was computed for
function M.is_current(req, version)
  if req.cancelled or not vim.api.nvim_buf_is_valid(req.bufnr) then
    return false
  end
  if vim.api.nvim_buf_get_changedtick(req.bufnr) ~= req.tick then
    return false
  end
  return version == nil or version == req.version
end

--- Byte column of an LSP position on a buffer line.
---@param bufnr integer
---@param pos lsp.Position
---@param encoding string
---@return integer row, integer col 0-based
function M.to_byte(bufnr, pos, encoding)
  local line = vim.api.nvim_buf_get_lines(bufnr, pos.line, pos.line + 1, false)[1] or ''
  return pos.line, vim.str_byteindex(line, encoding, pos.character, false)
end

--- LSP position of a 0-based (row, byte column).
---@param bufnr integer
---@param row integer
---@param col integer
---@param encoding string
---@return lsp.Position
function M.to_lsp(bufnr, row, col, encoding)
  local line = vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
  return { line = row, character = vim.str_utfindex(line, encoding, math.min(col, #line), false) }
end

return M
