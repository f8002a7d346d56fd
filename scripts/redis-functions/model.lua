#!lua name=voltage_model
-- Models (modsrv): a piece of equipment (a station, a battery, a PCS) as a JSON document and its
-- named points. Keys and calls: docs/redis-functions.md.
--
--   modsrv:model:{ID}          string  the model JSON, exactly as upserted (with "id" added when absent)
--   modsrv:model:{ID}:points   hash    point name -> point JSON (name, unit, ..., optional mapping)
--   modsrv:models              zset    model ids, all with score 0 (listed in id order)
--
-- The braces are part of the key names: a Redis Cluster hash tag, so every key of a model lives
-- in the slot of the id the caller passes as KEYS[1] (`FCALL model_get 1 model_001`).

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

local MODELS = 'modsrv:models'

local function model_key(id)
  return 'modsrv:model:{' .. id .. '}'
end

local function points_key(id)
  return 'modsrv:model:{' .. id .. '}:points'
end

-- A point's live value: comsrv:{channel}:{T|S|C|A}:{point id}.
local MAPPING = '^comsrv:%d+:[TSCA]:%d+$'

-- The points of a model as a list of {name, point JSON}: an array of objects with a "name", or
-- an object name -> point.
local function expand_points(points)
  local out, seen = {}, {}
  if points == nil or points == cjson.null then
    return out
  end
  if type(points) ~= 'table' then
    bad('"points" must be an object or an array, got %s', show(points))
  end
  local function add(name, p, where)
    if not is_object(p) then
      bad('%s must be an object, got %s', where, show(p))
    end
    if type(name) ~= 'string' or name == '' then
      bad('%s needs a non-empty string "name"', where)
    end
    if p.name ~= nil and p.name ~= name then
      bad('%s has "name" %s', where, show(p.name))
    end
    if seen[name] then
      bad('point %s is declared twice', show(name))
    end
    seen[name] = true
    local m = p.mapping
    if m ~= nil and m ~= cjson.null and (type(m) ~= 'string' or not m:find(MAPPING)) then
      bad('point %s: "mapping" must look like comsrv:1001:T:1 (channel, T|S|C|A, point id), got %s',
        show(name), show(m))
    end
    p.name = name
    out[#out + 1] = { name, cjson.encode(p) }
  end
  if #points > 0 then
    for i, p in ipairs(points) do
      add(type(p) == 'table' and p.name or nil, p, 'points[' .. (i - 1) .. ']')
    end
  else
    for name, p in pairs(points) do
      add(name, p, 'point ' .. show(name))
    end
  end
  return out
end

-- The model JSON to store: the caller's text unchanged (cjson would round numbers to 14 digits
-- and turn [] into {}), with "id" spliced in front when the caller left it out.
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

local function existing(id)
  local raw = redis.call('GET', model_key(id))
  if not raw then
    bad('model %s not found', show(id))
  end
  return raw
end

def('model_upsert', {
  keys = { 'model_id' },
  args = { 'model_json', '[upsert|create|update]' },
  doc = 'Stores a model and replaces its points; returns {"id","created","points"}',
}, function(keys, args)
  local id = check_id(keys[1], 'model id')
  local raw = args[1]
  local m = json_object(raw, 'model_json')
  if m.id ~= nil and m.id ~= id then
    bad('model_json has "id" %s but the key is %s', show(m.id), show(id))
  end
  local mode = args[2] or 'upsert'
  if mode ~= 'upsert' and mode ~= 'create' and mode ~= 'update' then
    bad('mode must be upsert, create or update, got %s', show(mode))
  end
  local points = expand_points(m.points)
  local exists = redis.call('EXISTS', model_key(id)) == 1
  if mode == 'create' and exists then
    bad('model %s already exists', show(id))
  elseif mode == 'update' and not exists then
    bad('model %s not found', show(id))
  end

  redis.call('SET', model_key(id), with_id(raw, m, id))
  redis.call('DEL', points_key(id))
  for i = 1, #points, 256 do
    local chunk = {}
    for j = i, math.min(i + 255, #points) do
      chunk[#chunk + 1] = points[j][1]
      chunk[#chunk + 1] = points[j][2]
    end
    redis.call('HSET', points_key(id), unpack(chunk))
  end
  redis.call('ZADD', MODELS, 0, id)
  return cjson.encode({ id = id, created = not exists, points = #points })
end)

def('model_get', {
  keys = { 'model_id' },
  args = {},
  ro = true,
  doc = 'The model JSON',
}, function(keys)
  return existing(check_id(keys[1], 'model id'))
end)

def('model_get_points', {
  keys = { 'model_id' },
  args = {},
  ro = true,
  doc = 'The points of a model as a JSON array, by name',
}, function(keys)
  local id = check_id(keys[1], 'model id')
  existing(id)
  local flat = redis.call('HGETALL', points_key(id))
  local names, json = {}, {}
  for i = 1, #flat, 2 do
    names[#names + 1] = flat[i]
    json[flat[i]] = flat[i + 1]
  end
  table.sort(names)
  local out = {}
  for i, n in ipairs(names) do
    out[i] = json[n]
  end
  return '[' .. table.concat(out, ',') .. ']'
end)

def('model_delete', {
  keys = { 'model_id' },
  args = {},
  doc = 'Deletes a model and its points',
}, function(keys)
  local id = check_id(keys[1], 'model id')
  existing(id)
  redis.call('DEL', model_key(id), points_key(id))
  redis.call('ZREM', MODELS, id)
  return redis.status_reply('OK')
end)

def('model_list', {
  keys = {},
  args = {},
  ro = true,
  doc = 'Every model as a JSON array, by id',
}, function()
  local out = {}
  for _, id in ipairs(redis.call('ZRANGE', MODELS, 0, -1)) do
    local raw = redis.call('GET', model_key(id))
    if raw then
      out[#out + 1] = raw
    end
  end
  return '[' .. table.concat(out, ',') .. ']'
end)
