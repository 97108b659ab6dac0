--- :checkhealth diffusion_ls
local config = require('diffusion_ls.config')
local lsp = require('diffusion_ls.lsp')

local M = {}

local TIMEOUT_MS = 60000 -- a cold server imports torch and may load the model before answering

--- A running client, or a temporary one that is stopped after the check.
---@return vim.lsp.Client?, boolean temporary, string? err
local function client_for_check()
  local client = lsp.get_client()
  if client then
    return client, false
  end
  local id = vim.lsp.start(lsp.client_config(vim.api.nvim_get_current_buf()), {
    attach = false, silent = true, reuse_client = lsp.reuse_client,
  })
  client = id and vim.lsp.get_client_by_id(id)
  if not client then
    return nil, false, 'the server did not start'
  end
  vim.wait(TIMEOUT_MS, function()
    return client.initialized or client:is_stopped()
  end, 50)
  -- A client still starting for a buffer is reused (and kept); one started just for this check is stopped after it.
  local temporary = next(client.attached_buffers) == nil
  if not client.initialized then
    if temporary then
      client:stop(true)
    end
    return nil, false, 'the server did not answer initialize'
  end
  return client, temporary
end

function M.check()
  vim.health.start('diffusion_ls')
  if vim.fn.has('nvim-0.11') == 1 then
    vim.health.ok('Neovim ' .. tostring(vim.version()))
  else
    vim.health.error('Neovim 0.11 or newer is required')
    return
  end

  local cfg = config.get()
  if require('diffusion_ls').is_setup() then
    vim.health.ok('setup() called')
    for _, problem in ipairs(config.problems()) do
      vim.health.warn('option: ' .. problem, { 'fix the option in setup(), see :help diffusion-ls-config' })
    end
  else
    vim.health.warn('setup() not called: no auto-trigger and no keymaps', { "require('diffusion_ls').setup({})" })
  end

  local exe = vim.fn.exepath(cfg.cmd[1])
  if exe == '' then
    vim.health.error(('server executable not found: %s'):format(cfg.cmd[1]), {
      'install diffusion-ls from a clone of its repository (its README: Install); it provides `diffusion-ls`',
      "or set cmd, e.g. { 'python', '-m', 'server.cli', 'serve' }",
    })
    return
  end
  vim.health.ok(('server executable: %s (cmd: %s)'):format(exe, table.concat(cfg.cmd, ' ')))

  local client, temporary, err = client_for_check()
  if not client then
    vim.health.error(err or 'no client')
    return
  end
  -- The server loads the model in the background after initialize: wait for that to end.
  local resp, reason
  local deadline = vim.uv.hrtime() + TIMEOUT_MS * 1e6
  repeat
    resp, reason = client:request_sync('diffusion/status', vim.empty_dict(), TIMEOUT_MS, 0)
    local loading = resp and type(resp.result) == 'table' and resp.result.loading == true
    if loading then
      vim.wait(200)
    end
  until not loading or vim.uv.hrtime() > deadline
  if temporary then
    client:stop()
  end
  if not resp or resp.err or type(resp.result) ~= 'table' then
    vim.health.error('diffusion/status failed: ' .. (reason or (resp and resp.err and resp.err.message) or 'no answer'))
    return
  end
  local s = resp.result
  vim.health.ok('server answers diffusion/status')
  local function shown(v)
    return (v == nil or v == vim.NIL) and 'none' or tostring(v)
  end
  vim.health.info(('backend: %s, model: %s, device: %s'):format(shown(s.backend), shown(s.model), shown(s.device)))
  for _, problem in ipairs(type(s.settingsProblems) == 'table' and s.settingsProblems or {}) do
    vim.health.warn('setting: ' .. tostring(problem))
  end
  if s.error and s.error ~= vim.NIL then
    vim.health.error('model error: ' .. tostring(s.error))
  elseif s.loaded then
    vim.health.ok(('model loaded (%s on %s)'):format(tostring(s.model), tostring(s.device)))
  else
    vim.health.warn('model not loaded')
  end
  local status = require('diffusion_ls.status')
  for _, line in ipairs(status.lines(s, vim.bo.filetype)) do
    if line:match('^capabilities') or line:match('^repo context') or line:match('^skipped') then
      vim.health.info((line:gsub('%s%s+', ': ', 1)))
    end
  end
  if type(s.repo) == 'table' and type(s.repo.rescanS) == 'number' then
    vim.health.info(('files changed outside Neovim reach the index by a walk of the workspace every %.0f s '
      .. '(this Neovim watches no files for servers)'):format(s.repo.rescanS))
  end
  if type(s.lastLatencyMs) == 'number' then
    vim.health.info(('last latency: %.0f ms, tokens per forward: %s, nfe: %s'):format(
      s.lastLatencyMs, tostring(s.tokensPerForward), tostring(s.nfe)))
  end
end

return M
