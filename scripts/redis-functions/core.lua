#!lua name=voltage_core
-- Core library of the VoltageEMS edge firmware.
--
-- voltage_functions_version: lets the daemon tell whether the libraries in this Redis are the
-- ones it was built with (they vanish on a Redis restart without persistence). Bump VERSION
-- whenever any library in this directory changes.

local VERSION = '2026.11.3'

local function functions_version(keys, args)
  return VERSION
end

redis.register_function{
  function_name = 'voltage_functions_version',
  callback = functions_version,
  flags = { 'no-writes' },
  description = 'Version of the VoltageEMS function libraries loaded in this Redis',
}
