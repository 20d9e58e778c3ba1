"""Send slots shared by every worker through Redis: at most one send per interval on a lane (a Slack channel,
an SMS sending number), each caller told how long to wait for its own slot.

A caller that would wait long gives up its turn to other work and comes back at its slot time: naming a
`holder` keeps the slot reserved for it in the meantime, so the lane's later callers queue behind it instead of
pushing it back, and no slot goes unused while one caller keeps asking.
"""

from __future__ import annotations

import time

from redis import Redis

_RESERVE = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
if KEYS[2] ~= '' then
  local held = redis.call('GET', KEYS[2])
  if held then return held end
end
local free = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = math.max(now, free)
local ttl = math.ceil((slot + interval - now) * 1000) + 1000
redis.call('SET', KEYS[1], tostring(slot + interval), 'PX', ttl)
if KEYS[2] ~= '' then
  redis.call('SET', KEYS[2], tostring(slot), 'PX', ttl + 600000)
end
return tostring(slot)
"""


def reserve(redis: Redis, lane: str, interval: float, holder: str | None = None) -> float:
    """The seconds until the caller's slot on `lane` (0 when it is now). With `holder`, asking again returns
    the same slot until `release(redis, holder)`."""
    now = time.time()
    slot = redis.eval(_RESERVE, 2, f"orderline:pace:{lane}", f"orderline:pace-holder:{holder}" if holder else "",
                      repr(now), repr(interval))
    return max(float(slot) - now, 0.0)


def release(redis: Redis, holder: str) -> None:
    """The holder used its slot: its next send takes a new one."""
    redis.delete(f"orderline:pace-holder:{holder}")
