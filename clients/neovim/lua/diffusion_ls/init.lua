--- diffusion_ls: fill-in-the-middle ghost text and select-and-rewrite from a text-diffusion language server.
local M = {}

local did_setup = false

--- Configure the plugin: options (see :help diffusion-ls-config), auto-attach, autocmds and keymaps.
--- Calling it again replaces the previous options. An invalid option is reported and its default is used.
---@param opts? table
function M.setup(opts)
  if vim.fn.has('nvim-0.11') ~= 1 then
    vim.notify('diffusion-ls needs Neovim 0.11 or newer', vim.log.levels.ERROR)
    return
  end
  -- An invalid option is named and replaced by its default; the plugin still starts with everything else.
  local problems = require('diffusion_ls.config').set(opts)
  if #problems > 0 then
    vim.notify('diffusion-ls: ' .. table.concat(problems, '\ndiffusion-ls: '), vim.log.levels.WARN)
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

--- For a statusline: '' without a diffusion-ls client in the buffer, else e.g. "diffusion-ls 42 ms",
--- "diffusion-ls …" while a completion runs, "diffusion-ls no suggestion", "diffusion-ls off" (see :help
--- diffusion-ls-statusline). `vim.o.statusline = '%f %= %{v:lua.require("diffusion_ls").statusline()}'`
---@param bufnr? integer
---@return string
function M.statusline(bufnr)
  return require('diffusion_ls.ghost').statusline(bufnr)
end

return M
