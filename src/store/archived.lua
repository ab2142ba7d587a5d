-- After the archiver committed a statement's events up to a point to PostgreSQL: marks
-- the closed records those events told of for removal after the retention, and trims
-- the event log up to that point. Run by the statement's owner only (fenced).
--
-- KEYS[1]: the statement's key base, "<prefix>:{stmt:<key>}" (one cluster slot).
-- ARGV[1]: fencing token the caller holds ("" = no fencing in force).
-- ARGV[2]: the stream id of the last event committed ("<ms>-<seq>").
-- ARGV[3]: the number of that event.
-- ARGV[4]: how long archived events stay in the log for live streams to resume from
--          (ms; see src/live).
-- ARGV[5..]: pairs <member> <close time ms>, member "o:<order>" or "p:<proof>".
-- Returns "OK", or "FENCED" (nothing written but a count of refusals).
local B = KEYS[1]
local fence = ARGV[1]
if fence ~= "" and redis.call('GET', B .. ':fence') ~= fence then
  redis.call('INCR', B .. ':fenced')
  return 'FENCED'
end
for i = 5, #ARGV, 2 do
  redis.call('ZADD', B .. ':closed', ARGV[i + 1], ARGV[i])
end
-- MINID keeps entries whose id is at least the threshold: entries archived and older
-- than the resume window go; newer archived ones stay for live streams to resume from.
local ms, sq = string.match(ARGV[2], '^(%d+)-(%d+)$')
if ms then
  local t = redis.call('TIME')
  local keep_from = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[4])
  local minid = ms .. '-' .. string.format('%d', tonumber(sq) + 1)
  if keep_from < tonumber(ms) then minid = string.format('%d', keep_from) .. '-0' end
  if keep_from >= 0 then redis.call('XTRIM', B .. ':events', 'MINID', minid) end
end
local done = tonumber(redis.call('GET', B .. ':archived') or '0')
if tonumber(ARGV[3]) > done then
  redis.call('SET', B .. ':archived', ARGV[3])
  if ms then redis.call('SET', B .. ':archived_id', ARGV[2]) end
end
return 'OK'
