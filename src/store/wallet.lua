-- One user's wallet: every change of its money, atomically with its ledger entry.
-- (src/store/dec.lua is prepended: dadd, dsub, dapply, dcmp, dmin, now_ms.)
--
-- KEYS[1]: the wallet's key base "<prefix>:{u:<name>}"; every key here starts with it,
--          so the script runs in one Redis Cluster slot.
-- ARGV[1]: the op; ARGV[2], ARGV[3]: the signup credit and signup deposit a wallet
--          opened now starts with; ARGV[4..]: the op's arguments.
--
-- Fields of <base>:w: balance, deposit (money in the wallet itself); opened (ms);
-- hw:<statement> (the id of the last payout of that statement applied here); the
-- producer's track record (delivered, failures, fines, gen_ms).
-- <base>:led: the ledger, one entry per movement of money: k (kind), b (change of
-- balance), d (change of deposit), r (what it pays for). balance and deposit are always
-- the sums of their ledger changes.
-- <base>:out: money sent to a statement's account and not yet known to have arrived:
-- order key -> "<statement>|<amount>|<balance or deposit>|<ms sent>" (see
-- src/store/wallets.rs).
-- <base>:stmts: the statements this wallet ever sent money to (where its accounts are).
local B = KEYS[1]
local W, LED, OUT, STMTS = B .. ':w', B .. ':led', B .. ':out', B .. ':stmts'
local op = ARGV[1]

-- The wallet's fields, read once: each redis.call costs about a microsecond.
local cur = redis.call('HMGET', W, 'balance', 'deposit', 'opened')
local fields = {balance = cur[1] or '0', deposit = cur[2] or '0'}
local function get(f)
  local v = fields[f]
  if v == nil then v = redis.call('HGET', W, f) or '0' end
  return v
end

local function ledger(kind, db, dd, ref)
  local id = redis.call('XADD', LED, '*', 'k', kind, 'b', db, 'd', dd, 'r', ref)
  -- Tells the nodes' live streams (src/live) of the movement: "w <entry id> <name>" on
  -- "<prefix>:events" (a hint; see transitions.lua).
  local prefix, name = string.match(B, '^(.*):{u:(.*)}$')
  if prefix then redis.call('PUBLISH', prefix .. ':events', 'w ' .. id .. ' ' .. name) end
end

-- A wallet opens on first use, with the market's signup amounts.
if not cur[3] then
  redis.call('HSET', W, 'opened', now_ms(), 'balance', ARGV[2], 'deposit', ARGV[3])
  fields = {balance = ARGV[2], deposit = ARGV[3]}
  if ARGV[2] ~= '0' or ARGV[3] ~= '0' then ledger('signup', ARGV[2], ARGV[3], '') end
end

local function state()
  return {get('balance'), get('deposit')}
end

if op == 'get' then
  -- balance, deposit, the number of statements, the statements, then the outbox as
  -- order, entry pairs.
  local out = state()
  local stmts = redis.call('SMEMBERS', STMTS)
  out[#out + 1] = tostring(#stmts)
  for _, s in ipairs(stmts) do out[#out + 1] = s end
  for _, v in ipairs(redis.call('HGETALL', OUT)) do out[#out + 1] = v end
  return out

elseif op == 'record' then
  -- A producer's track record: proofs delivered, deadlines missed, fines, generation ms.
  return {get('delivered'), get('failures'), get('fines'), get('gen_ms')}

elseif op == 'credit' then
  -- credit <amount> <kind> <ref>
  local amount = ARGV[4]
  fields.balance = dadd(get('balance'), amount)
  redis.call('HSET', W, 'balance', fields.balance)
  ledger(ARGV[5], amount, '0', ARGV[6])
  return state()

elseif op == 'deposit' or op == 'release' then
  -- deposit|release <amount>: balance -> deposit, or back
  local amount = ARGV[4]
  local from, to = 'balance', 'deposit'
  if op == 'release' then from, to = 'deposit', 'balance' end
  local left = dsub(get(from), amount)
  if left == nil then return {'SHORT', get(from)} end
  fields[to] = dadd(get(to), amount)
  fields[from] = left
  redis.call('HSET', W, from, left, to, fields[to])
  if op == 'deposit' then ledger('deposit', '-' .. amount, amount, '')
  else ledger('release', amount, '-' .. amount, '') end
  return state()

elseif op == 'fund' then
  -- fund <order> <statement> <least> <most> <balance|deposit> <kind>: sends between
  -- least and the larger of most and a tenth of the field (as much as there is) to
  -- the statement's account with the order.
  -- (Order keys are fresh from the key counter: one never funds twice.)
  local order, stmt, least, most, field, kind = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
  local have = get(field)
  if dcmp(have, least) < 0 then return {'SHORT', have} end
  -- At least a tenth of what the wallet has (the last digit dropped: exact), so a
  -- user's account on a statement is topped up rarely.
  local tenth = '0'
  if #have > 1 then tenth = string.sub(have, 1, #have - 1) end
  if dcmp(tenth, most) > 0 then most = tenth end
  local amount = dmin(have, most)
  local now = now_ms()
  redis.call('HSET', W, field, dsub(have, amount))
  redis.call('SADD', STMTS, stmt)
  redis.call('HSET', OUT, order, stmt .. '|' .. amount .. '|' .. field .. '|' .. now)
  if field == 'balance' then ledger(kind, '-' .. amount, '0', order)
  else ledger(kind, '0', '-' .. amount, order) end
  return {'OK', amount, now}

elseif op == 'arrived' then
  -- arrived <order>...: the statements hold these orders; forget the transfers.
  local n = 0
  for i = 4, #ARGV do n = n + redis.call('HDEL', OUT, ARGV[i]) end
  return n

elseif op == 'refund' then
  -- refund <order>: the order will never exist; the money comes back (once).
  local v = redis.call('HGET', OUT, ARGV[4])
  if not v then return 0 end
  local stmt, amount, field = string.match(v, '^([^|]*)|([^|]*)|([^|]*)|')
  redis.call('HSET', W, field, dadd(get(field), amount))
  if field == 'balance' then ledger('refund', amount, '0', ARGV[4])
  else ledger('refund', '0', amount, ARGV[4]) end
  redis.call('HDEL', OUT, ARGV[4])
  return 1

elseif op == 'payouts' then
  -- payouts <statement> <n> <order>*n then per payout: <id> <balance> <blocked> <deposit> <locked> <kind> <ref> <gen ms>,
  -- the n orders being ones this wallet funded that their statement now holds (their
  -- outbox entries go),
  -- in id order. Applies those after the statement's high-water mark, once each. A
  -- producer's track record moves with them: `earn` is a proof delivered (with its
  -- generation time), `fined` a deadline missed (with the fine).
  local stmt = ARGV[4]
  local narrived = tonumber(ARGV[5])
  if narrived > 0 then redis.call('HDEL', OUT, unpack(ARGV, 6, 5 + narrived)) end
  local hwf = 'hw:' .. stmt
  local hw = redis.call('HGET', W, hwf) or '0-0'
  local function after(id, mark)
    local a1, a2 = string.match(id, '^(%d+)-(%d+)$')
    local b1, b2 = string.match(mark, '^(%d+)-(%d+)$')
    a1, a2, b1, b2 = tonumber(a1), tonumber(a2), tonumber(b1), tonumber(b2)
    return a1 > b1 or (a1 == b1 and a2 > b2)
  end
  local v = {balance = get('balance'), deposit = get('deposit')}
  local applied = 0
  local rec = {delivered = 0, failures = 0, gen = '0', fines = '0'}
  local i = 6 + narrived
  while i + 7 <= #ARGV do
    local id = ARGV[i]
    if after(id, hw) then
      local db, dk, dd, dl, kind, ref = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
      if kind == 'earn' then
        rec.delivered = rec.delivered + 1
        rec.gen = dadd(rec.gen, ARGV[i + 7])
      elseif kind == 'fined' then
        rec.failures = rec.failures + 1
        rec.fines = dadd(rec.fines, string.gsub(dl, '^-', ''))
      end
      -- Payouts only add money (sweeps from accounts; `earn` and `fined` carry only the
      -- track record: the money of a trade stays in the statement's accounts).
      v.balance = dapply(v.balance, db) or '0'
      v.deposit = dapply(v.deposit, dd) or '0'
      if db ~= '0' or dd ~= '0' then ledger(kind, db, dd, stmt .. ':' .. ref) end
      hw = id
      applied = applied + 1
    end
    i = i + 8
  end
  if applied > 0 then
    redis.call('HSET', W, 'balance', v.balance, 'deposit', v.deposit, hwf, hw)
  end
  if rec.delivered > 0 or rec.failures > 0 then
    redis.call('HINCRBY', W, 'delivered', rec.delivered)
    redis.call('HINCRBY', W, 'failures', rec.failures)
    redis.call('HSET', W, 'gen_ms', dadd(get('gen_ms'), rec.gen), 'fines', dadd(get('fines'), rec.fines))
  end
  return applied
end
return redis.error_reply('unknown wallet op ' .. tostring(op))
