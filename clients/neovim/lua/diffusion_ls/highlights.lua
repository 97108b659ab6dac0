--- Default highlight groups, set with `default = true` so a colorscheme or the user can override them.
---
--- Ghost text and masked slots must not look like typed code in either color mode. Neovim's default colorscheme (and
--- many others) give Comment and NonText a GUI color only, so without 'termguicolors' a plain link draws them in the
--- Normal color: a group whose source has no cterm color gets the source's attributes plus a grey cterm color.
local M = {}

--- group -> { source group, cterm color when the source has none (xterm-256 grey) }
local DIM = {
  DiffusionLsGhost = { 'Comment', 244 },
  DiffusionLsMasked = { 'NonText', 240 },
  DiffusionLsHint = { 'Comment', 244 },
}

--- group -> source group, linked as is (the default colorscheme gives them cterm colors).
local LINKS = {
  DiffusionLsRemoved = 'DiffDelete',
  DiffusionLsAdded = 'DiffAdd',
}

---@param hl vim.api.keyset.get_hl_info
---@return boolean
local function has_cterm(hl)
  return hl.ctermfg ~= nil or hl.ctermbg ~= nil or (hl.cterm ~= nil and next(hl.cterm) ~= nil)
end

--- Define the groups (again after a colorscheme change, which clears them).
function M.set()
  for name, dim in pairs(DIM) do
    local source = vim.api.nvim_get_hl(0, { name = dim[1], link = false })
    if has_cterm(source) then
      vim.api.nvim_set_hl(0, name, { link = dim[1], default = true })
    else
      local hl = vim.tbl_extend('force', source, { ctermfg = dim[2], default = true })
      vim.api.nvim_set_hl(0, name, hl)
    end
  end
  for name, source in pairs(LINKS) do
    vim.api.nvim_set_hl(0, name, { link = source, default = true })
  end
end

return M
