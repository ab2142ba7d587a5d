-- Exact arithmetic on money, shared by the scripts that move it (prepended to them).
--
-- Amounts are non-negative integers of micro-units written as decimal strings ("0",
-- "1500000"); a signed delta may start with "-". Lua numbers are doubles, exact only
-- below 2^53, and costs reach 10^18 micro-units, so no amount is ever turned into a Lua
-- number: strings are added and subtracted in chunks of 15 digits, each exact.

local function dnorm(s)
  if string.byte(s, 1) ~= 48 or #s == 1 then return s end
  s = string.gsub(s, '^0+', '')
  if s == '' then return '0' end
  return s
end

-- Amounts of at most 15 digits (below 10^15 < 2^53) are exact as Lua numbers: the fast
-- path for the usual sizes; longer ones go through the chunked string arithmetic.
local SHORT = 15
-- %d formats through a C long: exact for these (below 2^53), cheaper than %.0f.
local function fmt(n) return string.format('%d', n) end

-- -1, 0 or 1 as a < b, a == b, a > b.
local function dcmp(a, b)
  a, b = dnorm(a), dnorm(b)
  if #a ~= #b then return (#a < #b) and -1 or 1 end
  if a == b then return 0 end
  return (a < b) and -1 or 1
end

-- Longer amounts are cut into chunks of CHUNK digits from the right: a chunk is below
-- 10^15, so the sum or difference of two chunks and a carry is exact as a Lua number.
local CHUNK = 15
local CHUNK_BASE = 1e15

local function chunk(s, i)
  if i <= 0 then return 0 end
  return tonumber(string.sub(s, math.max(1, i - CHUNK + 1), i))
end

-- The decimal string of chunks, least significant first (inner chunks zero-padded).
local function join(parts)
  local out = {fmt(parts[#parts])}
  for k = #parts - 1, 1, -1 do out[#out + 1] = string.format('%015d', parts[k]) end
  return dnorm(table.concat(out))
end

-- A long amount (normalized, more than CHUNK digits) changed by a short one, d (a Lua
-- number, |d| < 10^15): only its low chunk changes unless it carries or borrows, the
-- usual case for balances; nil when it does (the caller takes the general path).
local function dlow(a, d)
  local n = #a
  if string.byte(a, 1) == 48 then return nil end
  local low = tonumber(string.sub(a, n - CHUNK + 1)) + d
  if low < 0 or low >= CHUNK_BASE then return nil end
  return string.sub(a, 1, n - CHUNK) .. string.format('%015d', low)
end

local function dadd(a, b)
  if #a <= SHORT and #b <= SHORT then return fmt(tonumber(a) + tonumber(b)) end
  if #b <= SHORT then
    local r = dlow(a, tonumber(b))
    if r then return r end
  elseif #a <= SHORT then
    local r = dlow(b, tonumber(a))
    if r then return r end
  end
  local parts, carry, i, j = {}, 0, #a, #b
  while i > 0 or j > 0 or carry > 0 do
    local s = chunk(a, i) + chunk(b, j) + carry
    if s >= CHUNK_BASE then carry = 1; s = s - CHUNK_BASE else carry = 0 end
    parts[#parts + 1] = s
    i, j = i - CHUNK, j - CHUNK
  end
  return join(parts)
end

-- a - b; nil when b > a (money never goes below zero).
local function dsub(a, b)
  if #a <= SHORT and #b <= SHORT then
    local d = tonumber(a) - tonumber(b)
    if d < 0 then return nil end
    return fmt(d)
  end
  if #b <= SHORT then
    local r = dlow(a, -tonumber(b))
    if r then return r end
  end
  if dcmp(a, b) < 0 then return nil end
  local parts, borrow, i, j = {}, 0, #a, #b
  while i > 0 do
    local s = chunk(a, i) - chunk(b, j) - borrow
    if s < 0 then borrow = 1; s = s + CHUNK_BASE else borrow = 0 end
    parts[#parts + 1] = s
    i, j = i - CHUNK, j - CHUNK
  end
  return join(parts)
end

-- cur + delta for a signed delta; nil when the result would be negative.
local function dapply(cur, delta)
  if string.byte(delta, 1) == 45 then return dsub(cur, string.sub(delta, 2)) end
  return dadd(cur, delta)
end

-- The negation of a signed delta.
local function dneg(delta)
  if delta == '0' then return '0' end
  if string.byte(delta, 1) == 45 then return string.sub(delta, 2) end
  return '-' .. delta
end

local function dmin(a, b)
  if dcmp(a, b) <= 0 then return a end
  return b
end

-- Redis's clock in milliseconds, as a decimal string.
local function now_ms()
  local t = redis.call('TIME')
  return string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
end
