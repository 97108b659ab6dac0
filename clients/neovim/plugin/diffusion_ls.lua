-- User commands of diffusion-ls; everything else starts with require('diffusion_ls').setup().
if vim.g.loaded_diffusion_ls then
  return
end
vim.g.loaded_diffusion_ls = true

local command = vim.api.nvim_create_user_command

command('DiffusionComplete', function()
  require('diffusion_ls.ghost').trigger()
end, { desc = 'diffusion-ls: complete at the cursor (ghost text)' })

command('DiffusionFill', function(opts)
  local rewrite = require('diffusion_ls.rewrite')
  local bufnr = vim.api.nvim_get_current_buf()
  rewrite.fill(bufnr, opts.range > 0 and rewrite.selection(bufnr, opts.line1, opts.line2, opts.range == 2) or nil)
end, { range = true, desc = 'diffusion-ls: fill every placeholder in the buffer or the range' })

command('DiffusionRewrite', function(opts)
  local rewrite = require('diffusion_ls.rewrite')
  local bufnr = vim.api.nvim_get_current_buf()
  rewrite.rewrite(bufnr, rewrite.selection(bufnr, opts.line1, opts.line2, opts.range == 2), opts.args)
end, { range = true, nargs = '*', desc = 'diffusion-ls: rewrite the selection [instruction]' })

command('DiffusionAccept', function()
  if not require('diffusion_ls.rewrite').accept() then
    require('diffusion_ls.ghost').accept('all')
  end
end, { desc = 'diffusion-ls: accept the rewrite or fill preview, or the ghost text' })

command('DiffusionReject', function()
  if not require('diffusion_ls.rewrite').reject() then
    require('diffusion_ls.ghost').dismiss()
  end
end, { desc = 'diffusion-ls: reject the rewrite or fill preview (or stop it), or dismiss the ghost text' })

command('DiffusionToggle', function(opts)
  require('diffusion_ls.ghost').toggle(opts.bang)
end, { bang = true, desc = 'diffusion-ls: completion as you type off/on (everywhere; with !: in this buffer)' })

command('DiffusionStatus', function()
  require('diffusion_ls.status').report()
end, { desc = 'diffusion-ls: show the server status in a floating window' })
