#!lua name=voltage_alarm
-- Alarms (alarmsrv): create, acknowledge, resolve, each an atomic check-and-change of the alarm's
-- status. Keys and calls: docs/redis-functions.md.
--
--   alarmsrv:seq                        counter   the last alarm id handed out (ids are 1, 2, ...)
--   alarmsrv:alarm:{ID}                 hash      the alarm's fields (metadata as JSON text)
--   alarmsrv:alarm:{ID}:events          list      its history, oldest first (created, acknowledged, resolved)
--   alarmsrv:alarms                     zset      every alarm id, score = id (= creation order)
--   alarmsrv:index:{Status}             zset      ids by status (Active, Acknowledged, Resolved)
--   alarmsrv:index:level:{Level}        zset      ids by level (Info, Warning, Major, Critical)
--   alarmsrv:index:{Status}:{Level}     zset      ids by status and level
--   alarmsrv:dedup:{KEY}                string    id of the unresolved alarm created with dedup_key KEY
--   alarmsrv:events                     stream    every alarm event (about the last 10000), for forwarders
--
-- In alarmsrv:alarm:{ID} the braces are part of the name (a Redis Cluster hash tag on the id);
-- in the index names {Status}, {Level} and {KEY} stand for the value.
--
-- Status machine: Active -> Acknowledged -> Resolved, and Active -> Resolved. Nothing leaves
-- Resolved. Timestamps are strings chosen by the caller (RFC 3339), stored as given.

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

local SEQ = 'alarmsrv:seq'
local ALL = 'alarmsrv:alarms'
local LEVELS = { 'Info', 'Warning', 'Major', 'Critical' }
local STATUSES = { 'Active', 'Acknowledged', 'Resolved' }
local KEEP_EVENTS = 100
local EVENTS_STREAM = 'alarmsrv:events'
local EVENTS_STREAM_MAX = 10000

local function alarm_key(id)
  return 'alarmsrv:alarm:{' .. id .. '}'
end

local function events_key(id)
  return 'alarmsrv:alarm:{' .. id .. '}:events'
end

local function index_keys(status, level)
  return 'alarmsrv:index:' .. status, 'alarmsrv:index:' .. status .. ':' .. level
end

local function dedup_key(k)
  return 'alarmsrv:dedup:' .. k
end

local function one_of(v, list, what)
  for _, x in ipairs(list) do
    if v == x then
      return v
    end
  end
  bad('%s must be one of %s, got %s', what, table.concat(list, ', '), show(v))
end

-- The alarm as JSON: its fields in a fixed order, metadata as stored, events if asked for.
local FIELDS = {
  'id', 'title', 'description', 'level', 'status', 'source', 'created_at', 'updated_at',
  'acknowledged_by', 'acknowledged_at', 'notes', 'resolved_by', 'resolved_at', 'resolution_notes',
  'dedup_key',
}

local function alarm_json(id, with_events)
  local flat = redis.call('HGETALL', alarm_key(id))
  if #flat == 0 then
    bad('alarm %s not found', show(id))
  end
  local h = {}
  for i = 1, #flat, 2 do
    h[flat[i]] = flat[i + 1]
  end
  local parts = {}
  for _, f in ipairs(FIELDS) do
    if h[f] then
      parts[#parts + 1] = '"' .. f .. '":' .. cjson.encode(h[f])
    end
  end
  parts[#parts + 1] = '"metadata":' .. (h.metadata or '{}')
  if with_events then
    local ev = redis.call('LRANGE', events_key(id), 0, -1)
    parts[#parts + 1] = '"events":[' .. table.concat(ev, ',') .. ']'
  end
  return '{' .. table.concat(parts, ',') .. '}'
end

local function add_event(id, event)
  redis.call('RPUSH', events_key(id), cjson.encode(event))
  redis.call('LTRIM', events_key(id), -KEEP_EVENTS, -1)
  -- Every alarm event also goes to one capped stream, in the same atomic change: consumers that
  -- forward alarms (netsrv to MQTT) or follow them read it with a cursor instead of scanning.
  local a = redis.call('HMGET', alarm_key(id), 'title', 'level', 'status', 'source')
  redis.call('XADD', EVENTS_STREAM, 'MAXLEN', '~', EVENTS_STREAM_MAX, '*',
    'alarm_id', id, 'event', event.event, 'at', event.at, 'status', a[3] or '',
    'level', a[2] or '', 'title', a[1] or '', 'source', a[4] or '', 'by', event.by or '')
end

local CREATE_FIELDS = { 'title', 'description', 'level', 'source', 'metadata', 'dedup_key' }

def('alarm_create', {
  keys = {},
  args = { 'alarm_json', 'created_at' },
  doc = 'Creates an Active alarm; returns {"id","created"} (created false: the unresolved alarm of the same dedup_key)',
}, function(_, args)
  local a = json_object(args[1], 'alarm_json')
  for f in pairs(a) do
    local known = false
    for _, c in ipairs(CREATE_FIELDS) do
      known = known or c == f
    end
    if not known then
      bad('alarm_json has an unknown field %s (fields: %s)', show(f), table.concat(CREATE_FIELDS, ', '))
    end
  end
  check_text(a.title, '"title"')
  one_of(a.level, LEVELS, '"level"')
  for _, f in ipairs({ 'description', 'source' }) do
    if a[f] ~= nil and type(a[f]) ~= 'string' then
      bad('"%s" must be a string, got %s', f, show(a[f]))
    end
  end
  if a.metadata ~= nil and not is_object(a.metadata) then
    bad('"metadata" must be an object, got %s', show(a.metadata))
  end
  if a.dedup_key ~= nil then
    check_id(check_text(a.dedup_key, '"dedup_key"'), 'dedup_key')
  end
  local at = check_text(args[2], 'created_at')

  if a.dedup_key then
    local other = redis.call('GET', dedup_key(a.dedup_key))
    local status = other and redis.call('HGET', alarm_key(other), 'status')
    if status and status ~= 'Resolved' then
      return cjson.encode({ id = other, created = false })
    end
  end
  local n = redis.call('INCR', SEQ)
  local id = tostring(n)
  redis.call('HSET', alarm_key(id),
    'id', id, 'title', a.title, 'description', a.description or '', 'level', a.level,
    'status', 'Active', 'source', a.source or '', 'created_at', at, 'updated_at', at,
    'metadata', a.metadata and cjson.encode(a.metadata) or '{}')
  if a.dedup_key then
    redis.call('HSET', alarm_key(id), 'dedup_key', a.dedup_key)
    redis.call('SET', dedup_key(a.dedup_key), id)
  end
  local by_status, by_both = index_keys('Active', a.level)
  redis.call('ZADD', ALL, n, id)
  redis.call('ZADD', by_status, n, id)
  redis.call('ZADD', by_both, n, id)
  redis.call('ZADD', 'alarmsrv:index:level:' .. a.level, n, id)
  add_event(id, { event = 'created', at = at, status = 'Active' })
  return cjson.encode({ id = id, created = true })
end)

def('alarm_get', {
  keys = { 'alarm_id' },
  args = {},
  ro = true,
  doc = 'The alarm as JSON, with its events',
}, function(keys)
  return alarm_json(check_id(keys[1], 'alarm id'), true)
end)

-- Moves alarm `id` from one of the statuses in `from` to `to`, recording who, when and why.
local function transition(fn, keys, args, from, to, fields)
  local id = check_id(keys[1], 'alarm id')
  local by = check_text(args[1], fn.by)
  local at = check_text(args[2], fn.at)
  local notes = args[3]
  local cur = redis.call('HMGET', alarm_key(id), 'status', 'level', 'dedup_key')
  local status, level, dedup = cur[1], cur[2], cur[3]
  if not status then
    bad('alarm %s not found', show(id))
  end
  local allowed = false
  for _, s in ipairs(from) do
    allowed = allowed or s == status
  end
  if not allowed then
    bad('alarm %s is %s; only %s alarms can be %s', show(id), status,
      table.concat(from, ' or '), fn.verb)
  end

  local old_status, old_both = index_keys(status, level)
  local new_status, new_both = index_keys(to, level)
  local n = tonumber(id)
  redis.call('ZREM', old_status, id)
  redis.call('ZREM', old_both, id)
  redis.call('ZADD', new_status, n, id)
  redis.call('ZADD', new_both, n, id)
  redis.call('HSET', alarm_key(id), 'status', to, 'updated_at', at, fields.by, by, fields.at, at)
  if notes then
    redis.call('HSET', alarm_key(id), fields.notes, notes)
  end
  if to == 'Resolved' and dedup and redis.call('GET', dedup_key(dedup)) == id then
    redis.call('DEL', dedup_key(dedup))
  end
  add_event(id, { event = fn.event, at = at, by = by, notes = notes, from = status, to = to })
  return alarm_json(id, true)
end

def('alarm_acknowledge', {
  keys = { 'alarm_id' },
  args = { 'acknowledged_by', 'acknowledged_at', '[notes]' },
  doc = 'Active -> Acknowledged; returns the alarm',
}, function(keys, args)
  return transition(
    { by = 'acknowledged_by', at = 'acknowledged_at', verb = 'acknowledged', event = 'acknowledged' },
    keys, args, { 'Active' }, 'Acknowledged',
    { by = 'acknowledged_by', at = 'acknowledged_at', notes = 'notes' })
end)

def('alarm_resolve', {
  keys = { 'alarm_id' },
  args = { 'resolved_by', 'resolved_at', '[notes]' },
  doc = 'Active or Acknowledged -> Resolved; returns the alarm',
}, function(keys, args)
  return transition(
    { by = 'resolved_by', at = 'resolved_at', verb = 'resolved', event = 'resolved' },
    keys, args, { 'Active', 'Acknowledged' }, 'Resolved',
    { by = 'resolved_by', at = 'resolved_at', notes = 'resolution_notes' })
end)

def('alarm_list', {
  keys = {},
  args = { '[status S] [level L] [limit N]...' },
  ro = true,
  doc = 'Alarms as a JSON array, newest first, filtered by status and level (default limit 100)',
}, function(_, args)
  local o = options(args, 1, { 'status', 'level', 'limit' })
  local limit = o.limit and check_int(o.limit, 'limit', 1, 10000) or 100
  local index = ALL
  if o.status and o.level then
    local _, both = index_keys(one_of(o.status, STATUSES, 'status'), one_of(o.level, LEVELS, 'level'))
    index = both
  elseif o.status then
    index = 'alarmsrv:index:' .. one_of(o.status, STATUSES, 'status')
  elseif o.level then
    index = 'alarmsrv:index:level:' .. one_of(o.level, LEVELS, 'level')
  end
  local out = {}
  for _, id in ipairs(redis.call('ZREVRANGE', index, 0, limit - 1)) do
    out[#out + 1] = alarm_json(id, false)
  end
  return '[' .. table.concat(out, ',') .. ']'
end)
