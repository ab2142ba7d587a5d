-- Removes archived closed records whose retention has passed: orders (their hash and
-- index entry) and proofs (their hash); and trims archived events older than the resume
-- window from the log (archived.lua keeps them there for live streams). Only members of the `closed` set are removed,
-- and the archiver adds a member only after PostgreSQL committed the record. Run by the
-- statement's owner only (fenced).
--
-- KEYS[1]: the statement's key base, "<prefix>:{stmt:<key>}" (one cluster slot).
-- ARGV[1]: fencing token ("" = none); ARGV[2]: remove what closed at or before this
-- time (ms); ARGV[3]: at most this many members; ARGV[4]: the resume window (ms).
-- Returns the keys of the orders and proofs removed, or "FENCED".
local B = KEYS[1]
local fence = ARGV[1]
if fence ~= "" and redis.call('GET', B .. ':fence') ~= fence then
  redis.call('INCR', B .. ':fenced')
  return 'FENCED'
end
local archived = redis.call('GET', B .. ':archived_id')
if archived then
  local t = redis.call('TIME')
  local keep_from = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[4])
  local ms, sq = string.match(archived, '^(%d+)-(%d+)$')
  if ms and keep_from >= 0 then
    local minid = ms .. '-' .. string.format('%d', tonumber(sq) + 1)
    if keep_from < tonumber(ms) then minid = string.format('%d', keep_from) .. '-0' end
    redis.call('XTRIM', B .. ':events', 'MINID', minid)
  end
end
local closed = B .. ':closed'
local members = redis.call('ZRANGEBYSCORE', closed, '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
local removed = {}
for _, m in ipairs(members) do
  local what, key = string.match(m, '^(%a):(%d+)$')
  if what == 'o' then
    local ok = B .. ':o:' .. key
    local o = redis.call('HMGET', ok, 'kind', 'status')
    -- Closed states are final; anything else is left alone.
    if o[2] == 'completed' or o[2] == 'withdrawn' then
      redis.call('DEL', ok)
      redis.call('ZREM', B .. ':ix:' .. o[1] .. ':' .. o[2], key)
      removed[#removed + 1] = key
    end
  elseif what == 'p' then
    if redis.call('DEL', B .. ':proof:' .. key) == 1 then
      removed[#removed + 1] = key
    end
  end
  redis.call('ZREM', closed, m)
end
return removed
