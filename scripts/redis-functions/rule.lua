#!lua name=voltage_rule
-- Rules (rulesrv): rule documents and the record of their executions. Keys and calls:
-- docs/redis-functions.md.
--
--   rulesrv:rule:{ID}              string  the rule JSON, exactly as upserted (with "id" added when absent)
--   rulesrv:rule:{ID}:executions   list    execution JSONs, newest first, capped (default 100)
--   rulesrv:rules                  zset    rule ids, all with score 0 (listed in id order)
--
-- The braces are part of the key names: a Redis Cluster hash tag, so every key of a rule lives in
-- the slot of the id the caller passes as KEYS[1]. The rule's last execution is the head of its
-- executions list (one key: the history and "the last one" cannot disagree).

-- >>> argument checking: the same block in every library of this directory (a library is
-- loaded on its own and cannot call another's code); functions.rs tests that the copies match.
--
-- def() registers a function behind a wrapper that checks the number of keys and arguments and
-- turns a failed check (bad(...), anywhere in the body) into the error reply
-- 'ERR <function>: <what is wrong>'. Bodies check everything before their first write, so an
-- error reply never leaves half a change behind. Anything else (a bug, a WRONGTYPE from Redis)
-- is raised unchanged, so it stays visible as what it is.

local function bad(fmt, ...)
  error({ bad = string.format(fmt, ...) }, 0)
end

local function is_array(v)
  return type(v) == 'table' and (next(v) == nil or #v > 0)
end

local function is_object(v) -- cjson decodes {} and [] alike: an empty table is both
  return type(v) == 'table' and (next(v) == nil or #v == 0)
end

-- A value as messages show it: strings quoted (control characters as '?', cut at 60
-- characters), anything else by its JSON type.
local function show(v)
  if type(v) == 'string' then
    local s = v:gsub('%c', '?')
    if #s > 60 then
      s = s:sub(1, 57) .. '...'
    end
    return "'" .. s .. "'"
  elseif v == nil then
    return 'nothing'
  elseif v == cjson.null then
    return 'null'
  elseif type(v) == 'table' then
    return is_array(v) and 'an array' or 'an object'
  end
  return type(v) .. ' ' .. tostring(v)
end

-- Decodes an argument that must hold a JSON object.
local function json_object(raw, what)
  if not raw:find('^%s*{') then
    bad('%s must be a JSON object', what)
  end
  local ok, v = pcall(cjson.decode, raw)
  if not ok then
    bad('%s is not valid JSON (%s)', what, tostring(v))
  end
  return v
end

-- Ids become parts of key names and URLs.
local function check_id(id, what)
  if #id == 0 or #id > 128 or id:find('[^%w_.:%-]') then
    bad('invalid %s %s: use 1 to 128 characters of A-Z a-z 0-9 _ . : -', what, show(id))
  end
  return id
end

-- A required non-empty string: a timestamp, a user name, a title.
local function check_text(v, what)
  if type(v) ~= 'string' or v == '' then
    bad('%s must be a non-empty string, got %s', what, show(v))
  end
  return v
end

local function check_int(v, what, min, max)
  local n = type(v) == 'string' and v:find('^%d+$') and tonumber(v)
  if not n or n < min or n > max then
    bad('%s must be an integer from %d to %d, got %s', what, min, max, show(v))
  end
  return n
end

-- Options given as name value pairs in args[from..]; `allowed` lists the names.
local function options(args, from, allowed)
  local opts, names = {}, table.concat(allowed, ', ')
  if (#args - from + 1) % 2 ~= 0 then
    bad('options come in pairs (name value), got an odd number of arguments')
  end
  for i = from, #args, 2 do
    local name, known = args[i], false
    for _, a in ipairs(allowed) do
      known = known or a == name
    end
    if not known then
      bad('unknown option %s (options: %s)', show(name), names)
    end
    if opts[name] then
      bad('option %s given twice', show(name))
    end
    opts[name] = args[i + 1]
  end
  return opts
end

-- Registers `name`; spec: keys and args (names for the usage line, '[x]' optional, '...' last
-- for name value options), ro (registers with the no-writes flag), doc. (Only the callback may
-- use string, table, ...: Redis offers just redis.* while it loads a library.)
local function def(name, spec, body)
  local function arity()
    local min, max, usage = 0, #spec.args, { name, #spec.keys }
    for _, k in ipairs(spec.keys) do
      usage[#usage + 1] = k
    end
    for _, a in ipairs(spec.args) do
      usage[#usage + 1] = a
      if a:sub(-3) == '...' then
        max = math.huge
      elseif a:sub(1, 1) ~= '[' then
        min = min + 1
      end
    end
    return min, max, (spec.ro and 'FCALL_RO ' or 'FCALL ') .. table.concat(usage, ' ')
  end
  local function count(n, what)
    return n .. ' ' .. what .. (n == 1 and '' or 's')
  end
  redis.register_function {
    function_name = name,
    description = spec.doc,
    flags = spec.ro and { 'no-writes' } or {},
    callback = function(keys, args)
      local min, max, usage = arity()
      local wrong
      if #keys ~= #spec.keys then
        wrong = string.format('expected %s, got %d', count(#spec.keys, 'key'), #keys)
      elseif #args < min or #args > max then
        local want = min == max and count(min, 'argument')
          or max == math.huge and 'at least ' .. count(min, 'argument')
          or string.format('%d to %d arguments', min, max)
        wrong = string.format('expected %s, got %d', want, #args)
      end
      if wrong then
        return redis.error_reply(string.format('ERR %s: %s (usage: %s)', name, wrong, usage))
      end
      local ok, res = pcall(body, keys, args)
      if ok then
        return res
      elseif type(res) == 'table' and res.bad then
        return redis.error_reply('ERR ' .. name .. ': ' .. res.bad)
      end
      error(res, 0)
    end,
  }
end
-- <<< argument checking

local RULES = 'rulesrv:rules'
local KEEP_DEFAULT = 100

local function rule_key(id)
  return 'rulesrv:rule:{' .. id .. '}'
end

local function executions_key(id)
  return 'rulesrv:rule:{' .. id .. '}:executions'
end

local function existing(id)
  local raw = redis.call('GET', rule_key(id))
  if not raw then
    bad('rule %s not found', show(id))
  end
  return raw
end

-- The rule JSON to store: the caller's text unchanged, with "id" spliced in front when absent.
local function with_id(raw, decoded, id)
  if decoded.id ~= nil then
    return raw
  end
  local rest = raw:match('^%s*{(.*)$')
  if next(decoded) == nil then
    rest = '}'
  else
    rest = ',' .. rest
  end
  return '{"id":' .. cjson.encode(id) .. rest
end

-- The parts of a rule the functions and rulesrv rely on; the expression's syntax is rulesrv's.
local function check_rule(r)
  if type(r.condition) ~= 'table' or not is_object(r.condition) then
    bad('"condition" must be an object with an "expression", got %s', show(r.condition))
  end
  check_text(r.condition.expression, '"condition.expression"')
  if r.actions ~= nil then
    if not is_array(r.actions) then
      bad('"actions" must be an array, got %s', show(r.actions))
    end
    for i, a in ipairs(r.actions) do
      if not is_object(a) then
        bad('actions[%d] must be an object, got %s', i - 1, show(a))
      end
      check_text(a.action_type, string.format('actions[%d].action_type', i - 1))
    end
  end
  if r.enabled ~= nil and type(r.enabled) ~= 'boolean' then
    bad('"enabled" must be true or false, got %s', show(r.enabled))
  end
end

def('rule_upsert', {
  keys = { 'rule_id' },
  args = { 'rule_json', '[upsert|create|update]' },
  doc = 'Stores a rule; returns {"id","created"}',
}, function(keys, args)
  local id = check_id(keys[1], 'rule id')
  local raw = args[1]
  local r = json_object(raw, 'rule_json')
  if r.id ~= nil and r.id ~= id then
    bad('rule_json has "id" %s but the key is %s', show(r.id), show(id))
  end
  local mode = args[2] or 'upsert'
  if mode ~= 'upsert' and mode ~= 'create' and mode ~= 'update' then
    bad('mode must be upsert, create or update, got %s', show(mode))
  end
  check_rule(r)
  local exists = redis.call('EXISTS', rule_key(id)) == 1
  if mode == 'create' and exists then
    bad('rule %s already exists', show(id))
  elseif mode == 'update' and not exists then
    bad('rule %s not found', show(id))
  end
  redis.call('SET', rule_key(id), with_id(raw, r, id))
  redis.call('ZADD', RULES, 0, id)
  return cjson.encode({ id = id, created = not exists })
end)

def('rule_get', {
  keys = { 'rule_id' },
  args = {},
  ro = true,
  doc = 'The rule JSON',
}, function(keys)
  return existing(check_id(keys[1], 'rule id'))
end)

def('rule_delete', {
  keys = { 'rule_id' },
  args = {},
  doc = 'Deletes a rule and its executions',
}, function(keys)
  local id = check_id(keys[1], 'rule id')
  existing(id)
  redis.call('DEL', rule_key(id), executions_key(id))
  redis.call('ZREM', RULES, id)
  return redis.status_reply('OK')
end)

def('rule_list', {
  keys = {},
  args = {},
  ro = true,
  doc = 'Every rule as a JSON array, by id',
}, function()
  local out = {}
  for _, id in ipairs(redis.call('ZRANGE', RULES, 0, -1)) do
    local raw = redis.call('GET', rule_key(id))
    if raw then
      out[#out + 1] = raw
    end
  end
  return '[' .. table.concat(out, ',') .. ']'
end)

def('rule_record_execution', {
  keys = { 'rule_id' },
  args = { 'execution_json', '[keep]' },
  doc = 'Records an execution as the rule\'s last; keeps the newest `keep` (default 100); returns how many are kept',
}, function(keys, args)
  local id = check_id(keys[1], 'rule id')
  local raw = args[1]
  local e = json_object(raw, 'execution_json')
  if type(e.triggered) ~= 'boolean' then
    bad('"triggered" must be true or false, got %s', show(e.triggered))
  end
  check_text(e.executed_at, '"executed_at" (a timestamp string)')
  if e.values ~= nil and not is_object(e.values) then
    bad('"values" must be an object, got %s', show(e.values))
  end
  if e.actions ~= nil and not is_array(e.actions) then
    bad('"actions" must be an array, got %s', show(e.actions))
  end
  local keep = args[2] and check_int(args[2], 'keep', 1, 10000) or KEEP_DEFAULT
  existing(id)
  redis.call('LPUSH', executions_key(id), raw)
  redis.call('LTRIM', executions_key(id), 0, keep - 1)
  return redis.call('LLEN', executions_key(id))
end)

def('rule_get_execution', {
  keys = { 'rule_id' },
  args = {},
  ro = true,
  doc = 'The rule\'s last execution JSON, or nil when it has none',
}, function(keys)
  local id = check_id(keys[1], 'rule id')
  existing(id)
  return redis.call('LINDEX', executions_key(id), 0)
end)

def('rule_list_executions', {
  keys = { 'rule_id' },
  args = { '[limit]' },
  ro = true,
  doc = 'The rule\'s executions as a JSON array, newest first (default limit 100)',
}, function(keys, args)
  local id = check_id(keys[1], 'rule id')
  local limit = args[1] and check_int(args[1], 'limit', 1, 10000) or 100
  existing(id)
  local ex = redis.call('LRANGE', executions_key(id), 0, limit - 1)
  return '[' .. table.concat(ex, ',') .. ']'
end)
