--- Options of diffusion_ls: the defaults, validation, and the current values.
local M = {}

---@class diffusion_ls.Keymaps
---Insert mode: accept the whole ghost text. Falls through to the key's previous meaning when nothing is shown.
---@field accept string|false
---Insert mode: accept the next word of the ghost text.
---@field accept_word string|false
---Insert mode: accept the rest of the ghost text's current line.
---@field accept_line string|false
---Insert mode: hide the ghost text and cancel the request.
---@field dismiss string|false
---Insert mode: ask for a completion now (no debounce).
---@field trigger string|false
---Visual mode: rewrite the selection (streams a preview).
---@field rewrite string|false
---Normal mode: accept the rewrite preview.
---@field rewrite_accept string|false
---Normal mode: reject the rewrite preview.
---@field rewrite_reject string|false
---Normal and visual mode: fill every placeholder in the buffer or the selection.
---@field fill string|false

---@class diffusion_ls.Config
---The server command; one server is shared by every buffer of this Neovim (the model is loaded once).
---@field cmd string[]
---Filetypes the server attaches to automatically (the languages the server parses).
---@field filetypes string[]
---Markers of a project root, for the server's workspace folder; the current directory when none is found.
---@field root_markers string[]
---Passed as initializationOptions: strategy, steps, threshold, contextBudget, maxTokens, modelPath, ...
---@field server_settings table<string, any>
---Ask for a completion while typing in insert mode.
---@field auto_trigger boolean
---Quiet time after the last keystroke before asking, in milliseconds; every keystroke cancels the previous request.
---@field debounce_ms integer
---Draw the intermediate canvases while the model denoises (false: only the final result).
---@field stream boolean
---`mode` of diffusion/rewrite: "regenerate" re-masks the selection, "refine" starts from the selected text.
---@field rewrite_mode "regenerate"|"refine"
---@field keymaps diffusion_ls.Keymaps

---@type diffusion_ls.Config
M.defaults = {
  cmd = { 'diffusion-ls', 'serve' },
  filetypes = {
    'python', 'javascript', 'javascriptreact', 'typescript', 'typescriptreact',
    'go', 'rust', 'java', 'c', 'cpp', 'cuda',
  },
  root_markers = { '.git', 'pyproject.toml', 'package.json', 'go.mod', 'Cargo.toml' },
  server_settings = {},
  auto_trigger = true,
  debounce_ms = 150,
  stream = true,
  rewrite_mode = 'regenerate',
  keymaps = {
    accept = '<Tab>',
    accept_word = '<C-Right>',
    accept_line = '<S-Tab>',
    dismiss = '<C-]>',
    trigger = '<M-\\>',
    rewrite = '<leader>dr',
    rewrite_accept = '<leader>da',
    rewrite_reject = '<leader>dx',
    fill = '<leader>df',
  },
}

---@type diffusion_ls.Config
local current = vim.deepcopy(M.defaults)

local function is_key(v)
  return v == false or type(v) == 'string'
end

local function string_list(v)
  if type(v) ~= 'table' then
    return false
  end
  for _, s in ipairs(v) do
    if type(s) ~= 'string' then
      return false
    end
  end
  return true
end

---@param cfg diffusion_ls.Config
local function validate(cfg)
  vim.validate('cmd', cfg.cmd, function(v)
    return string_list(v) and #v > 0
  end, 'non-empty list of strings')
  vim.validate('filetypes', cfg.filetypes, string_list, 'list of strings')
  vim.validate('root_markers', cfg.root_markers, string_list, 'list of strings')
  vim.validate('server_settings', cfg.server_settings, 'table')
  vim.validate('auto_trigger', cfg.auto_trigger, 'boolean')
  vim.validate('debounce_ms', cfg.debounce_ms, function(v)
    return type(v) == 'number' and v >= 0
  end, 'number >= 0')
  vim.validate('stream', cfg.stream, 'boolean')
  vim.validate('rewrite_mode', cfg.rewrite_mode, function(v)
    return v == 'regenerate' or v == 'refine'
  end, '"regenerate" or "refine"')
  vim.validate('keymaps', cfg.keymaps, 'table')
  for name in pairs(M.defaults.keymaps) do
    vim.validate('keymaps.' .. name, cfg.keymaps[name], is_key, 'string or false')
  end
  for name in pairs(cfg.keymaps) do
    if M.defaults.keymaps[name] == nil then
      error(('keymaps.%s: unknown keymap'):format(name))
    end
  end
end

--- Merge user options over the defaults and validate them; on an invalid value nothing changes.
---@param opts? table
---@return boolean ok, string? err
function M.set(opts)
  vim.validate('opts', opts, 'table', true)
  local cfg = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts or {})
  -- Lists replace, they do not merge index by index.
  for _, key in ipairs({ 'cmd', 'filetypes', 'root_markers' }) do
    if opts and opts[key] ~= nil then
      cfg[key] = opts[key]
    end
  end
  local ok, err = pcall(validate, cfg)
  if not ok then
    return false, err
  end
  current = cfg
  return true
end

---@return diffusion_ls.Config
function M.get()
  return current
end

return M
