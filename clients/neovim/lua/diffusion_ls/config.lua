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
---Draw the intermediate canvases while the model denoises: 'asked' (for completions asked for with <M-\>, rewrites
---and fills; as you type only the final suggestion appears, with no canvas that may vanish), true (as you type too),
---false (only final results).
---@field stream boolean|'asked'
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
  stream = 'asked',
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

--- Each option's check: vim.validate's validator and what it expects.
---@type table<string, { [1]: vim.validate.Validator, [2]: string? }>
local checks = {
  cmd = { function(v) return string_list(v) and #v > 0 end, 'non-empty list of strings' },
  filetypes = { string_list, 'list of strings' },
  root_markers = { string_list, 'list of strings' },
  server_settings = { 'table' },
  auto_trigger = { 'boolean' },
  debounce_ms = { function(v) return type(v) == 'number' and v >= 0 end, 'number >= 0' },
  stream = { function(v) return type(v) == 'boolean' or v == 'asked' end, "true, false or 'asked'" },
  rewrite_mode = { function(v) return v == 'regenerate' or v == 'refine' end, '"regenerate" or "refine"' },
  keymaps = { 'table' },
}

--- A value on one short line, for messages.
---@param value any
---@return string
function M.show(value)
  local s = vim.inspect(value, { newline = ' ', indent = '' })
  return #s > 48 and s:sub(1, 45) .. '...' or s
end

--- The problems of the last M.set, one sentence each (for setup's warning and :checkhealth).
---@type string[]
local problems = {}

---@param name string
---@param value any
---@param validator vim.validate.Validator
---@param expected? string
---@return string? err
local function check(name, value, validator, expected)
  if pcall(vim.validate, name, value, validator, expected) then
    return nil
  end
  return ('%s: expected %s, got %s'):format(name, expected or tostring(validator), M.show(value))
end

--- Merge user options over the defaults and validate them, option by option: an invalid or unknown option is named in
--- M.problems() and its default is used; every other option applies.
---@param opts? table
---@return string[] problems
function M.set(opts)
  problems = {}
  if opts ~= nil and type(opts) ~= 'table' then
    problems[1] = ('options must be a table, got %s; using the defaults'):format(type(opts))
    opts = nil
  end
  opts = opts or {}
  local cfg = vim.deepcopy(M.defaults)
  for name, value in pairs(opts) do
    local c = checks[name]
    local err = c and check(name, value, c[1], c[2])
    if not c then
      problems[#problems + 1] = ('unknown option %s ignored'):format(tostring(name))
    elseif err then
      problems[#problems + 1] = ('%s; using the default %s'):format(err, M.show(M.defaults[name]))
    elseif name == 'keymaps' then
      for key, lhs in pairs(value) do
        local default = M.defaults.keymaps[key]
        err = check('keymaps.' .. tostring(key), lhs, is_key, 'string or false')
        if default == nil then
          problems[#problems + 1] = ('unknown keymap keymaps.%s ignored'):format(tostring(key))
        elseif err then
          problems[#problems + 1] = ('%s; using the default %s'):format(err, M.show(default))
        else
          cfg.keymaps[key] = lhs
        end
      end
    elseif name == 'server_settings' then
      cfg[name] = vim.deepcopy(value)
    else
      cfg[name] = value -- lists replace, they do not merge index by index
    end
  end
  table.sort(problems)
  current = cfg
  return problems
end

--- The problems of the last M.set (empty when every option was valid).
---@return string[]
function M.problems()
  return problems
end

---@return diffusion_ls.Config
function M.get()
  return current
end

return M
