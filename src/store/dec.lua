-- Exact arithmetic on money, shared by the scripts that move it (prepended to them).
--
-- Amounts are non-negative integers of micro-units written as decimal strings ("0",
-- "1500000"); a signed delta may start with "-". Lua numbers are doubles, exact only
-- below 2^53, and costs reach 10^18 micro-units, so no amount is ever turned into a Lua
-- number: strings are added and subtracted in chunks of 9 digits, each exact.

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

local function chunk(s, i)
  if i <= 0 then return 0 end
  return tonumber(string.sub(s, math.max(1, i - 8), i))
end

local function dadd(a, b)
  if #a <= SHORT and #b <= SHORT then return fmt(tonumber(a) + tonumber(b)) end
  local out, carry, i, j = {}, 0, #a, #b
  while i > 0 or j > 0 or carry > 0 do
    local s = chunk(a, i) + chunk(b, j) + carry
    if s >= 1000000000 then carry = 1; s = s - 1000000000 else carry = 0 end
    table.insert(out, 1, string.format('%09.0f', s))
    i, j = i - 9, j - 9
  end
  return dnorm(table.concat(out))
end

-- a - b; nil when b > a (money never goes below zero).
local function dsub(a, b)
  if #a <= SHORT and #b <= SHORT then
    local d = tonumber(a) - tonumber(b)
    if d < 0 then return nil end
    return fmt(d)
  end
  if dcmp(a, b) < 0 then return nil end
  local out, borrow, i, j = {}, 0, #a, #b
  while i > 0 do
    local s = chunk(a, i) - chunk(b, j) - borrow
    if s < 0 then borrow = 1; s = s + 1000000000 else borrow = 0 end
    table.insert(out, 1, string.format('%09.0f', s))
    i, j = i - 9, j - 9
  end
  return dnorm(table.concat(out))
end

-- cur + delta for a signed delta; nil when the result would be negative.
local function dapply(cur, delta)
  if string.sub(delta, 1, 1) == '-' then return dsub(cur, string.sub(delta, 2)) end
  return dadd(cur, delta)
end

-- The negation of a signed delta.
local function dneg(delta)
  if delta == '0' then return '0' end
  if string.sub(delta, 1, 1) == '-' then return string.sub(delta, 2) end
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
