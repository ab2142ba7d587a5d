-- After the archiver committed a statement's events up to a point to PostgreSQL: marks
-- the closed records those events told of for removal after the retention, and trims
-- the event log up to that point. Run by the statement's owner only (fenced).
--
-- KEYS[1]: the statement's key base, "<prefix>:{stmt:<key>}" (one cluster slot).
-- ARGV[1]: fencing token the caller holds ("" = no fencing in force).
-- ARGV[2]: the stream id of the last event committed ("<ms>-<seq>").
-- ARGV[3]: the number of that event.
-- ARGV[4..]: pairs <member> <close time ms>, member "o:<order>" or "p:<proof>".
-- Returns "OK", or "FENCED" (nothing written but a count of refusals).
local B = KEYS[1]
local fence = ARGV[1]
if fence ~= "" and redis.call('GET', B .. ':fence') ~= fence then
  redis.call('INCR', B .. ':fenced')
  return 'FENCED'
end
for i = 4, #ARGV, 2 do
  redis.call('ZADD', B .. ':closed', ARGV[i + 1], ARGV[i])
end
-- MINID keeps entries whose id is at least the threshold: the next id after ARGV[2].
local ms, sq = string.match(ARGV[2], '^(%d+)-(%d+)$')
if ms then
  redis.call('XTRIM', B .. ':events', 'MINID', ms .. '-' .. string.format('%d', tonumber(sq) + 1))
end
local done = tonumber(redis.call('GET', B .. ':archived') or '0')
if tonumber(ARGV[3]) > done then
  redis.call('SET', B .. ':archived', ARGV[3])
end
return 'OK'
