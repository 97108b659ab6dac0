--- diffusion_ls: fill-in-the-middle ghost text and select-and-rewrite from a text-diffusion language server.
local M = {}

local did_setup = false

--- Configure the plugin: options (see :help diffusion-ls-config), auto-attach, autocmds and keymaps.
--- Calling it again replaces the previous options.
---@param opts? table
function M.setup(opts)
  if vim.fn.has('nvim-0.11') ~= 1 then
    vim.notify('diffusion-ls needs Neovim 0.11 or newer', vim.log.levels.ERROR)
    return
  end
  local ok, err = require('diffusion_ls.config').set(opts)
  if not ok then
    vim.notify('diffusion-ls: invalid option: ' .. tostring(err), vim.log.levels.ERROR)
    return
  end
  require('diffusion_ls.lsp').setup()
  require('diffusion_ls.ghost').setup()
  require('diffusion_ls.rewrite').setup()
  did_setup = true
end

---@return boolean
function M.is_setup()
  return did_setup
end

return M
