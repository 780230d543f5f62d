"""The online store's writes as Redis Lua scripts: a view's values and its vector slices in one atomic step.

:data:`SET_IF_NEWER` is the compare-and-set every write goes through (our writer, our materialization, and Feast's
``online_write_batch`` for ``push`` and ``feast materialize``). Per key it decodes the stored ``_ts:<view>``
Timestamp and writes only when the new event time is strictly newer (Feast's dedup rule; a minute bar's time
carries its origin's rank below the microsecond, :mod:`~ingestion.store.online.origin`), and in the same HSET the
view's slice of every precompute service's vector (:mod:`~ingestion.store.online.layout`), built from the very
values it writes. A script runs atomically, so no reader ever sees values without their slices
or a slice older than its values; and no race between the read and the write, which Feast's read-then-write has.

:data:`SET_SLICES_IF_CURRENT` takes slices computed elsewhere (Feast's ``precompute_feature_service``) and writes one
only when the view's stored event time is the one the slice was computed from: a slice can be refreshed, never
rolled back. A stored time that carries an origin rank (:mod:`~ingestion.store.online.origin`) is matched only to
the microsecond by a slice that went through Feast's float read, so it could not tell the streamed bar of a minute
from the REST bar that replaced it: such a view gets a slice from there only where it has none yet (its values'
own write put the current one).
"""

from __future__ import annotations

# Shared Lua: protobuf varint decode and a Timestamp's (seconds, nanos).
_LUA_PROTO = """
local function varint(s, pos)
  local v, mult = 0, 1
  while true do
    local b = string.byte(s, pos)
    pos = pos + 1
    v = v + (b % 128) * mult
    if b < 128 then return v, pos end
    mult = mult * 128
  end
end
local function decode(s)
  local secs, nanos, pos = 0, 0, 1
  while pos <= #s do
    local tag = string.byte(s, pos)
    local v
    v, pos = varint(s, pos + 1)
    if tag == 8 then secs = v elseif tag == 16 then nanos = v end
  end
  return secs, nanos
end
"""

# ARGV: ts field, field count nf, the nf field names (the view's features, then its vector slices), then per key:
# seconds, nanos, Timestamp bytes and the nf values. The slices are built in Python, where a column is encoded at
# once (built here, a string concatenation per value, they halved the write rate). Field names are sent once per
# call, not once per key: every argument is a string Redis copies into Lua and back, and the names were half of them.
SET_IF_NEWER = (
    _LUA_PROTO
    + """
local tsf = ARGV[1]
local nf = tonumber(ARGV[2])
local stride = 3 + nf
local written = 0
local args = {tsf}
for j = 1, nf do args[2 * j + 1] = ARGV[2 + j] end
for k = 1, #KEYS do
  local at = 3 + nf + (k - 1) * stride
  local newer = true
  local old = redis.call('HGET', KEYS[k], tsf)
  if old then
    local secs = tonumber(ARGV[at])
    local nanos = tonumber(ARGV[at + 1])
    local osecs, onanos = decode(old)
    if (osecs > 0 or onanos > 0) and (secs < osecs or (secs == osecs and nanos <= onanos)) then newer = false end
  end
  if newer then
    args[2] = ARGV[at + 2]
    for j = 1, nf do args[2 * j + 2] = ARGV[at + 2 + j] end
    redis.call('HSET', KEYS[k], unpack(args))
    written = written + 1
  end
end
return written
"""
)

# KEYS[1]: the entity hash. ARGV: quadruples (ts field, Timestamp the slice was computed from, slice field, slice).
# Times may have passed through a float (Feast's online_read): equal within 2 microseconds counts as the same. A
# stored time with sub-microsecond nanos carries an origin rank the float lost: only a missing slice is filled.
SET_SLICES_IF_CURRENT = (
    _LUA_PROTO
    + """
local written = 0
for at = 1, #ARGV, 4 do
  local old = redis.call('HGET', KEYS[1], ARGV[at])
  if old then
    local osecs, onanos = decode(old)
    local secs, nanos = decode(ARGV[at + 1])
    local diff = (osecs - secs) * 1000000000 + (onanos - nanos)
    if diff > -2000 and diff < 2000 and (onanos % 1000 == 0 or redis.call('HEXISTS', KEYS[1], ARGV[at + 2]) == 0) then
      redis.call('HSET', KEYS[1], ARGV[at + 2], ARGV[at + 3])
      written = written + 1
    end
  end
end
return written
"""
)

__all__ = ["SET_IF_NEWER", "SET_SLICES_IF_CURRENT"]
