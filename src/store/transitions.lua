-- Applies a batch of order transitions of ONE statement atomically.
--
-- Called as `FCALL <function> 1 <base> <args...>` (the function's name is given by
-- src/store/transitions.rs, for __FUNCTION__ below); KEYS[1] and ARGV below are its key
-- and args.
-- KEYS[1]: the statement's key base, "<prefix>:{stmt:<key>}"; every key touched here
--          starts with it, so the whole batch lives in one Redis Cluster slot.
-- ARGV[1]: fencing token the caller holds ("" = no fencing in force). A stale token
--          writes nothing but a count of refusals in FENCED_KEY.
-- ARGV[2]: most entries the statement's event log keeps (approximately; "0" = no cap).
-- ARGV[3..]: ops, each as <name> <argc> <args...>.
-- Returns one reply per op (but `accounts`, which reads ahead for the ops after it): "OK"
-- or "E:<name>:<message>". An op checks everything
-- before it writes anything, so a refused op changes nothing. The names, read by
-- `Refusal::parse_reply` in Rust (an unknown name there is a corrupt reply):
--   exists        the order or proof to create exists already
--   not_found     no order of the expected side has that key
--   not_yours     the order belongs to another user than the sender
--   wrong_status  an order's status does not allow the transition
--   not_matched   a proof's request and proposal are not matched to each other
--   late          an order's money was sent too long ago (its wallet may have taken it back)
--   bad_op        an op name this script does not know (a bug; the batch stops there)
--
-- Every op that changes an order appends an event to the statement's event log (a
-- stream in the same slot, so the append is part of this atomic step). The caller
-- encodes each op's event (JSON, see `store::events`) as an argument of the op (named
-- <event> below); the script emits it only if the op applied. A batch's events go out as one entry per
-- EVENTS_PER_ENTRY events: `n` (the number of the entry's first event; EVSEQ_KEY counts
-- every event, without gaps), then `e <event>` per event. The archiver (src/archive)
-- applies them to PostgreSQL in order.
-- This file is a Redis function library (FUNCTION LOAD, called with FCALL): the code
-- below runs once when the library loads, and `run` once per batch. So everything a
-- batch sets is reset by `run`: the statement's key base and the keys built from it,
-- the batch's clock, buffers and accounts.
local B, ARGV
local FENCE_KEY, FENCED_KEY, PROVEN_KEY, IDEM_KEY, EVENTS_KEY, EVSEQ_KEY, PAY_KEY
local SEEN_KEY, STATS_KEY, TRADES_KEY, RESALE_KEY, ACCT_KEY

-- Every key this library touches, built from B here only. The layout is documented in
-- src/store/keys.rs, whose tests check these suffixes against the Rust side's.
local function keys_of(base)
  B = base
  FENCE_KEY = B .. ':fence'
  FENCED_KEY = B .. ':fenced'
  PROVEN_KEY = B .. ':proven'
  IDEM_KEY = B .. ':idem'
  EVENTS_KEY = B .. ':events'
  EVSEQ_KEY = B .. ':evseq'
  PAY_KEY = B .. ':pay'
  SEEN_KEY = B .. ':seen'
  STATS_KEY = B .. ':stats'
  TRADES_KEY = B .. ':trades'
  RESALE_KEY = B .. ':resale'
  ACCT_KEY = B .. ':acct'
end
local function day_key(day) return B .. ':day:' .. day end
local TRADES_KEPT = 100
local DAY_SECONDS = 86400
local function order_key(k) return B .. ':o:' .. k end
local function proof_key(k) return B .. ':proof:' .. k end
local function buyers_key(k) return B .. ':buyers:' .. k end
local function index_key(kind, status) return B .. ':ix:' .. kind .. ':' .. status end

local cap

-- Redis's clock, read at most once per batch.
local clock = nil
local function script_now()
  if clock == nil then clock = now_ms() end
  return clock
end

-- Events of the ops applied so far, written by flush(): {'e', event, 'e', event, ...}.
local evbuf = {}
local EVENTS_PER_ENTRY = 1000

local function flush()
  local count = #evbuf / 2
  if count == 0 then return end
  local last = redis.call('INCRBY', EVSEQ_KEY, count)
  local cmd = {'XADD', EVENTS_KEY}
  if cap ~= '0' then
    cmd[#cmd + 1] = 'MAXLEN'; cmd[#cmd + 1] = '~'; cmd[#cmd + 1] = cap
  end
  cmd[#cmd + 1] = '*'
  cmd[#cmd + 1] = 'n'; cmd[#cmd + 1] = last - count + 1
  for j = 1, #evbuf do cmd[#cmd + 1] = evbuf[j] end
  local id = redis.call(unpack(cmd))
  evbuf = {}
  -- Tells the nodes' live streams (src/live) that the log grew: "<statement> <entry id>"
  -- on "<prefix>:events". A hint only: a node that misses it reads on from its cursor.
  local prefix, stmt = string.match(B, '^(.*):{stmt:(%d+)}$')
  if prefix then redis.call('PUBLISH', prefix .. ':events', stmt .. ' ' .. id) end
end

local function emit(event)
  evbuf[#evbuf + 1] = 'e'
  evbuf[#evbuf + 1] = event
  if #evbuf >= 2 * EVENTS_PER_ENTRY then flush() end
end

local function move(kind, key, from, to)
  redis.call('ZREM', index_key(kind, from), key)
  redis.call('ZADD', index_key(kind, to), key, key)
end

-- Market data, kept as trades happen and written once per batch (flush_market): the
-- day's open/close/min/max/volume (UTC days, kept 8 days), the last price, completed
-- trades' sums, the latest trades.
local days, stats, trades = {}, {set = {}}, {}
local function day_of(now)
  local dk = day_key(math.floor(tonumber(now) / (DAY_SECONDS * 1000)))
  local d = days[dk]
  if d == nil then
    local v = redis.call('HMGET', dk, 'min', 'max', 'volume', 'trades')
    d = {min = v[1], max = v[2], volume = v[3] or '0', trades = tonumber(v[4]) or 0, fresh = not v[4], set = {}}
    days[dk] = d
  end
  return d
end

-- The statement's sums of completed trades, read once per batch when a proof needs them.
local function stats_sums()
  if stats.completed == nil then
    local v = redis.call('HMGET', STATS_KEY, 'completed', 'price_sum', 'gen_ms_sum')
    stats.completed, stats.price_sum, stats.gen_ms_sum = tonumber(v[1]) or 0, v[2] or '0', v[3] or '0'
  end
  return stats
end

local function flush_market()
  for dk, d in pairs(days) do
    local upd = {'HSET', dk, 'volume', d.volume, 'trades', d.trades}
    for f, v in pairs(d.set) do upd[#upd + 1] = f; upd[#upd + 1] = v end
    redis.call(unpack(upd))
    if d.fresh then redis.call('EXPIRE', dk, 8 * DAY_SECONDS) end
  end
  local upd = {'HSET', STATS_KEY}
  for f, v in pairs(stats.set) do upd[#upd + 1] = f; upd[#upd + 1] = v end
  if #upd > 2 then redis.call(unpack(upd)) end
  if #trades > 0 then
    -- Trimmed back to the latest TRADES_KEPT once twice that many (readers take the
    -- first TRADES_KEPT).
    local len = 0
    for j = 1, #trades, 1000 do
      len = redis.call('LPUSH', TRADES_KEY, unpack(trades, j, math.min(j + 999, #trades)))
    end
    if len >= 2 * TRADES_KEPT then redis.call('LTRIM', TRADES_KEY, 0, TRADES_KEPT - 1) end
  end
end

local ops = {}

-- new <kind> <key> <status> <event> <funded at> <window> <field> <value> ...
-- <funded at>: when the order's wallet sent its money ("" = no money); the order is
-- refused once <window> ms have passed since, as its wallet may then take the money back
-- (src/store/wallets.rs).
ops['new'] = function(a)
  local kind, key, status = a[1], a[2], a[3]
  local ok = order_key(key)
  if redis.call('EXISTS', ok) == 1 then return 'E:exists:order ' .. key .. ' exists' end
  if a[5] ~= '' and dcmp(script_now(), dadd(a[5], a[6])) > 0 then
    return 'E:late:the money of order ' .. key .. ' was sent too long ago'
  end
  local fields = {}
  local sender, proof = nil, nil
  for j = 7, #a do
    fields[#fields + 1] = a[j]
    if (j - 7) % 2 == 0 then
      if a[j] == 'sender' then sender = a[j + 1] elseif a[j] == 'proof_key' then proof = a[j + 1] end
    end
  end
  redis.call('HSET', ok, 'kind', kind, 'status', status, unpack(fields))
  -- A request completed at once by a stored proof: its sender may read the proof.
  if status == 'completed' and sender and proof then redis.call('SADD', buyers_key(proof), sender) end
  redis.call('ZADD', index_key(kind, status), key, key)
  emit(a[4])
  return 'OK'
end

-- match <request key> <proposal key> <price> <now> <event> <request held> <proposal held>
ops['match'] = function(a)
  local rk, pk, price, now = a[1], a[2], a[3], a[4]
  local r = redis.call('HMGET', order_key(rk), 'kind', 'status')
  local p = redis.call('HMGET', order_key(pk), 'kind', 'status')
  if r[1] ~= 'request' or r[2] ~= 'created' then return 'E:wrong_status:request ' .. rk .. ' is not open' end
  if p[1] ~= 'proposal' or p[2] ~= 'created' then return 'E:wrong_status:proposal ' .. pk .. ' is not open' end
  redis.call('HSET', order_key(rk), 'status', 'processing', 'proposal_key', pk,
    'matched_time', now, 'price', price, 'updatedOn', now, 'held', a[6])
  redis.call('HSET', order_key(pk), 'status', 'processing', 'request_key', rk,
    'matched_time', now, 'price', price, 'updatedOn', now, 'held', a[7])
  move('request', rk, 'created', 'processing')
  move('proposal', pk, 'created', 'processing')
  local d = day_of(now)
  d.volume = dadd(d.volume, price)
  d.trades = d.trades + 1
  d.set.close = price
  if d.trades == 1 then d.set.open = price end
  if not d.min or dcmp(price, d.min) < 0 then d.min = price; d.set.min = price end
  if not d.max or dcmp(price, d.max) > 0 then d.max = price; d.set.max = price end
  stats.set.last, stats.set.last_at = price, now
  trades[#trades + 1] = rk .. '|' .. pk .. '|' .. price .. '|' .. now
  emit(a[5])
  return 'OK'
end

-- withdraw <kind> <key> <sender> <now> <event>
ops['withdraw'] = function(a)
  local kind, key, sender, now = a[1], a[2], a[3], a[4]
  local o = redis.call('HMGET', order_key(key), 'kind', 'status', 'sender')
  if o[1] ~= kind then return 'E:not_found:no ' .. kind .. ' ' .. key end
  if sender ~= '' and o[3] ~= sender then return 'E:not_yours:' .. kind .. ' ' .. key .. ' belongs to another user' end
  if o[2] ~= 'created' then
    return 'E:wrong_status:' .. kind .. ' ' .. key .. ' is ' .. tostring(o[2]) .. '; only created orders can be withdrawn'
  end
  redis.call('HSET', order_key(key), 'status', 'withdrawn', 'updatedOn', now)
  move(kind, key, 'created', 'withdrawn')
  emit(a[5])
  return 'OK'
end

-- proof <proof key> <proposal key> <request key> <sender> <canonical input> <now> <event> <digest> <field> <value> ...
-- <digest>: the proof bytes' identity; bytes accepted once (for any match of this
-- statement) are refused ever after, so nobody is paid for another's proof.
ops['proof'] = function(a)
  local fk, pk, rk, sender, canon, now = a[1], a[2], a[3], a[4], a[5], a[6]
  local p = redis.call('HMGET', order_key(pk), 'kind', 'status', 'sender', 'request_key')
  local r = redis.call('HMGET', order_key(rk), 'kind', 'status', 'proposal_key')
  if p[1] ~= 'proposal' then return 'E:not_found:no proposal ' .. pk end
  if p[3] ~= sender then return 'E:not_yours:proposal ' .. pk .. ' belongs to another user' end
  if p[2] ~= 'processing' then
    return 'E:wrong_status:proposal ' .. pk .. ' is ' .. tostring(p[2]) .. '; a proof is accepted only while it is processing'
  end
  if r[1] ~= 'request' or p[4] ~= rk or r[3] ~= pk then
    return 'E:not_matched:request ' .. rk .. ' and proposal ' .. pk .. ' are not matched to each other'
  end
  if r[2] ~= 'processing' then return 'E:wrong_status:request ' .. rk .. ' is ' .. tostring(r[2]) end
  local pf = proof_key(fk)
  if redis.call('EXISTS', pf) == 1 then return 'E:exists:proof ' .. fk .. ' exists' end
  if redis.call('SISMEMBER', SEEN_KEY, a[8]) == 1 then
    return 'E:exists:this proof was already accepted for another match; push your own'
  end
  local fields = {}
  for j = 9, #a do fields[#fields + 1] = a[j] end
  redis.call('HSET', pf, unpack(fields))
  redis.call('HSET', order_key(rk), 'status', 'completed', 'proof_key', fk, 'updatedOn', now)
  redis.call('HSET', order_key(pk), 'status', 'completed', 'proof_key', fk, 'updatedOn', now)
  move('request', rk, 'processing', 'completed')
  move('proposal', pk, 'processing', 'completed')
  redis.call('HSETNX', PROVEN_KEY, canon, fk)
  redis.call('SADD', SEEN_KEY, a[8])
  -- Statistics of completed trades: count, sum of prices, sum of generation times.
  local m = redis.call('HMGET', order_key(rk), 'price', 'matched_time')
  local gen = math.max(0, tonumber(now) - (tonumber(m[2]) or tonumber(now)))
  redis.call('HSET', RESALE_KEY, fk, sender .. '|' .. (m[1] or '0'))
  local st = stats_sums()
  st.completed = st.completed + 1
  st.price_sum = dadd(st.price_sum, m[1] or '0')
  st.gen_ms_sum = dadd(st.gen_ms_sum, string.format('%.0f', gen))
  st.set.completed, st.set.price_sum, st.set.gen_ms_sum = st.completed, st.price_sum, st.gen_ms_sum
  redis.call('SADD', buyers_key(fk), redis.call('HGET', order_key(rk), 'sender'))
  emit(a[7])
  return 'OK'
end

-- rollback <request key> <proposal key> <now> <event> <request cost>: the proposal
-- missed its deadline: the request is open again (its arrival number kept), the
-- proposal withdrawn with `failed` set.
ops['rollback'] = function(a)
  local rk, pk, now = a[1], a[2], a[3]
  local r = redis.call('HMGET', order_key(rk), 'kind', 'status', 'proposal_key')
  local p = redis.call('HMGET', order_key(pk), 'kind', 'status', 'request_key')
  if r[1] ~= 'request' or r[2] ~= 'processing' or r[3] ~= pk then
    return 'E:wrong_status:request ' .. rk .. ' is not processing with proposal ' .. pk
  end
  if p[1] ~= 'proposal' or p[2] ~= 'processing' or p[3] ~= rk then
    return 'E:wrong_status:proposal ' .. pk .. ' is not processing with request ' .. rk
  end
  redis.call('HDEL', order_key(rk), 'proposal_key', 'matched_time', 'price')
  redis.call('HSET', order_key(rk), 'status', 'created', 'updatedOn', now, 'cost', a[5])
  redis.call('HSET', order_key(pk), 'status', 'withdrawn', 'updatedOn', now, 'failed', now)
  move('request', rk, 'processing', 'created')
  move('proposal', pk, 'processing', 'withdrawn')
  emit(a[4])
  return 'OK'
end

-- resold <request> <proof> <now> <price> <event> [<proposal> <event>]: the request's input
-- was proved for another match: it completes with that proof (a resale at <price>); a
-- matched one's proposal is released, withdrawn with `released` set (no fine).
ops['resold'] = function(a)
  local rk, fk, now, price = a[1], a[2], a[3], a[4]
  local r = redis.call('HMGET', order_key(rk), 'kind', 'status', 'proposal_key')
  if r[1] ~= 'request' or (r[2] ~= 'created' and r[2] ~= 'processing') then
    return 'E:wrong_status:request ' .. rk .. ' is not open'
  end
  if redis.call('EXISTS', proof_key(fk)) == 0 then return 'E:not_found:no proof ' .. fk end
  local pk = a[6]
  if r[2] == 'processing' then
    if pk == nil or r[3] ~= pk then return 'E:wrong_status:request ' .. rk .. ' is matched to another proposal' end
    local p = redis.call('HMGET', order_key(pk), 'kind', 'status', 'request_key')
    if p[1] ~= 'proposal' or p[2] ~= 'processing' or p[3] ~= rk then
      return 'E:wrong_status:proposal ' .. pk .. ' is not processing with request ' .. rk
    end
    redis.call('HDEL', order_key(pk), 'request_key', 'matched_time', 'price')
    redis.call('HSET', order_key(pk), 'status', 'withdrawn', 'updatedOn', now, 'released', now)
    move('proposal', pk, 'processing', 'withdrawn')
    redis.call('HDEL', order_key(rk), 'proposal_key', 'matched_time')
  end
  redis.call('HSET', order_key(rk), 'status', 'completed', 'proof_key', fk, 'price', price, 'updatedOn', now)
  move('request', rk, r[2], 'completed')
  redis.call('SADD', buyers_key(fk), redis.call('HGET', order_key(rk), 'sender'))
  emit(a[5])
  if r[2] == 'processing' then emit(a[7]) end
  return 'OK'
end

-- Statement accounts: each user's money parked on this statement, in ACCT_KEY as
-- <user>:b (free balance), <user>:k (escrow its open requests hold), <user>:d (free
-- deposit), <user>:l (collateral its open proposals hold); and a producer's record
-- here, <user>:ok (proofs delivered) and <user>:fail (deadlines missed). Read once per user per batch,
-- changed in Lua, the changed fields written back once at the end. The movements of a
-- money op are also its `moved` event in the event log (built by the caller), so the
-- statement's ledger is archived and trimmed with its history.
local FIELDS = {'b', 'k', 'd', 'l'}
local accts, dirty = {}, {}
local function load_accounts(users)
  local fields = {}
  for _, u in ipairs(users) do
    for _, f in ipairs(FIELDS) do fields[#fields + 1] = u .. ':' .. f end
  end
  local v = redis.call('HMGET', ACCT_KEY, unpack(fields))
  for j, u in ipairs(users) do
    local o = 4 * (j - 1)
    accts[u] = {b = v[o + 1] or '0', k = v[o + 2] or '0', d = v[o + 3] or '0', l = v[o + 4] or '0'}
  end
end

local function account(u)
  if accts[u] == nil then load_accounts({u}) end
  return accts[u]
end

-- accounts <user> ...: reads the accounts of the batch's users at once (the caller lists
-- them first, so that the movements after it find them read). No reply of its own.
ops['accounts'] = function(a)
  local users = {}
  for _, u in ipairs(a) do
    if accts[u] == nil then users[#users + 1] = u end
    if #users == 500 then load_accounts(users); users = {} end
  end
  if #users > 0 then load_accounts(users) end
  return nil
end

local function flush_accounts()
  local cmd = {'HSET', ACCT_KEY}
  for u, d in pairs(dirty) do
    local a = accts[u]
    for _, f in ipairs(FIELDS) do
      if d[f] then cmd[#cmd + 1] = u .. ':' .. f; cmd[#cmd + 1] = a[f] end
    end
  end
  if #cmd > 2 then redis.call(unpack(cmd)) end
end

-- Movements <user> <b> <k> <d> <l> <kind> <order> <gen ms> from index j of a: each
-- changes the user's account here; a `sweep` also sends what it takes to the user's
-- wallet, and `earn`/`fined` tell the wallet's track record (the statement's payout
-- stream, delivered by its owner).
local function move_money(a, j)
  while j + 7 <= #a do
    local u, db, dk, dd, dl, kind, ref, g = a[j], a[j + 1], a[j + 2], a[j + 3], a[j + 4], a[j + 5], a[j + 6], a[j + 7]
    local acc = account(u)
    -- The state never moves more than an account has; a shortfall here is a bug and
    -- is floored at zero (the invariant checks would show it).
    local d = dirty[u]
    if d == nil then d = {}; dirty[u] = d end
    if db ~= '0' then acc.b = dapply(acc.b, db) or '0'; d.b = true end
    if dk ~= '0' then acc.k = dapply(acc.k, dk) or '0'; d.k = true end
    if dd ~= '0' then acc.d = dapply(acc.d, dd) or '0'; d.d = true end
    if dl ~= '0' then acc.l = dapply(acc.l, dl) or '0'; d.l = true end
    -- A producer's record on this statement (its rating ranks its proposals).
    if kind == 'earn' then redis.call('HINCRBY', ACCT_KEY, u .. ':ok', 1)
    elseif kind == 'fined' then redis.call('HINCRBY', ACCT_KEY, u .. ':fail', 1) end
    if kind == 'sweep' then
      redis.call('XADD', PAY_KEY, '*', 'u', u, 'b', dneg(db), 'k', '0', 'd', dneg(dd),
        'l', '0', 't', kind, 'r', ref, 'g', '0')
    elseif kind == 'earn' or kind == 'fined' then
      redis.call('XADD', PAY_KEY, '*', 'u', u, 'b', '0', 'k', '0', 'd', '0',
        'l', dl, 't', kind, 'r', ref, 'g', g)
    end
    j = j + 8
  end
end

-- money <event> <n> (<order> <held>)*n <movement>*: the money of the op before it,
-- applied only if that op was: what orders hold, the movements of the accounts, and
-- their `moved` event ("" when there are none).
-- account <event> <n> ...: the same, on its own (sweeps).
local prev_ok = false
local function money(a)
  local n = tonumber(a[2])
  for j = 0, n - 1 do
    redis.call('HSET', order_key(a[3 + 2 * j]), 'held', a[4 + 2 * j])
  end
  move_money(a, 3 + 2 * n)
  if a[1] ~= '' then emit(a[1]) end
  return 'OK'
end
ops['money'] = function(a)
  if not prev_ok then return 'OK' end
  return money(a)
end
ops['account'] = money

-- remember <scoped idempotency key> <order key> <now> <sender>
ops['remember'] = function(a)
  redis.call('HSET', IDEM_KEY, a[1], a[2] .. ':' .. a[3] .. ':' .. a[4])
  return 'OK'
end

-- forget <scoped idempotency key> ...
ops['forget'] = function(a)
  if #a > 0 then redis.call('HDEL', IDEM_KEY, unpack(a)) end
  return 'OK'
end

local function run(keys, argv)
  keys_of(keys[1])
  ARGV = argv
  clock, evbuf, accts, dirty, prev_ok = nil, {}, {}, {}, false
  days, stats, trades = {}, {set = {}}, {}
  cap = ARGV[2]
  local fence = ARGV[1]
  if fence ~= "" then
    local held = redis.call('GET', FENCE_KEY)
    if held ~= fence then
      redis.call('INCR', FENCED_KEY)
      return {'FENCED'}
    end
  end
  local res = {}
  local i = 3
  while i <= #ARGV do
    local name = ARGV[i]
    local n = tonumber(ARGV[i + 1])
    local f = ops[name]
    if f == nil or n == nil then
      res[#res + 1] = 'E:bad_op:unknown op ' .. tostring(name)
      break
    end
    local a
    if n <= 4000 then
      -- unpack copies in C; it is bounded by Lua's C stack, so long ops copy in a loop.
      a = {unpack(ARGV, i + 2, i + 1 + n)}
    else
      a = {}
      for j = 1, n do a[j] = ARGV[i + 1 + j] end
    end
    local r = f(a)
    if r ~= nil then
      res[#res + 1] = r
      if name ~= 'money' and name ~= 'account' then prev_ok = (r == 'OK') end
    end
    i = i + 2 + n
  end
  flush_accounts()
  flush_market()
  flush()
  return res
end

redis.register_function('__FUNCTION__', run)
