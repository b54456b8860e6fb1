/*
 * redis_scripts.c - the Lua sources; their contracts are in
 * redis_scripts.h.
 */
#include "broker/redis_scripts.h"

#include "broker/redis_keys.h"

#include <stddef.h>

static const char lua_pop[] =
    "local now = ARGV[1]\n"
    "local want = tonumber(ARGV[2])\n"
    "local out, z, h = {}, {}, {}\n"
    "local function fields(msg, q)\n"
    "  local ok, env = pcall(cjson.decode, msg)\n"
    "  local tag, ex, rk, redel = nil, '', q, 0\n"
    "  if ok and type(env) == 'table' then\n"
    "    local p = env['properties']\n"
    "    if type(p) == 'table' then\n"
    "      local t = p['delivery_tag']\n"
    "      if type(t) == 'string' or type(t) == 'number' then tag = tostring(t) end\n"
    "      local di = p['delivery_info']\n"
    "      if type(di) == 'table' then\n"
    "        if type(di['exchange']) == 'string' then ex = di['exchange'] end\n"
    "        if type(di['routing_key']) == 'string' then rk = di['routing_key'] end\n"
    "        if di['redelivered'] == true then redel = 1 end\n"
    "      end\n"
    "    end\n"
    "    local hd = env['headers']\n"
    "    if type(hd) == 'table' and hd['redelivered'] == true then redel = 1 end\n"
    "  end\n"
    "  return tag, ex, rk, redel\n"
    "end\n"
    /* Decoding 1 KB of JSON per message is most of the script's cost, and
     * Lua patterns are not much cheaper, so the common shapes (what kombu
     * and we write: these keys once, plain values) are read with plain
     * finds and anything unusual is decoded. */
    "local function plain(msg, key, init)\n"
    "  local _, e = string.find(msg, key, init, true)\n"
    "  if not e then return nil, nil end\n"
    "  local q = string.find(msg, '\"', e + 1, true)\n"
    "  if not q then return nil, nil end\n"
    "  local v = string.sub(msg, e + 1, q - 1)\n"
    "  if string.find(v, '\\\\', 1, true) then return nil, nil end\n"
    "  return v, q\n"
    "end\n"
    /* Exchange and routing key repeat across a batch: encode each once. */
    "local enc = {}\n"
    "local function jstr(v)\n"
    "  local e = enc[v]\n"
    "  if not e then e = cjson.encode(v); enc[v] = e end\n"
    "  return e\n"
    "end\n"
    /* Deliveries: 1 + the restores we counted; a message restored by
     * someone who does not count (kombu) has been delivered at least
     * twice. The hash is looked at only when it exists at all. */
    "local counted = redis.call('EXISTS', KEYS[3]) == 1\n"
    "local function count(tag, redel)\n"
    "  local n = counted and tonumber(redis.call('HGET', KEYS[3], tag))\n"
    "  if n then return n + 1 end\n"
    "  if redel == 1 then return 2 end\n"
    "  return 1\n"
    "end\n"
    /* An empty message has nothing to record or run: straight to the
     * dead letters, reported as count 0 with the reason in place of the
     * tag so the consumer logs it. */
    "local function record(q, msg)\n"
    "  if msg == '' then\n"
    "    local why = 'empty message'\n"
    "    redis.call('LPUSH', KEYS[4], cjson.encode({queue = q, reason = why, dead_at = now,\n"
    "                                               message = ''}))\n"
    "    out[#out + 1] = q; out[#out + 1] = why; out[#out + 1] = 0; out[#out + 1] = ''\n"
    "    return\n"
    "  end\n"
    "  local tag = plain(msg, '\"delivery_tag\": \"', 1)\n"
    "  local ex, at = plain(msg, '\"delivery_info\": {\"exchange\": \"', 1)\n"
    "  local rk = at and string.sub(msg, at + 1, at + 18) == ', \"routing_key\": \"' and\n"
    "             plain(msg, ', \"routing_key\": \"', at + 1)\n"
    "  local redel = 0\n"
    "  if string.find(msg, '\"redelivered\": true', 1, true) then redel = 1 end\n"
    "  if not tag or not ex or not rk then tag, ex, rk, redel = fields(msg, q) end\n"
    "  if not tag then tag = redis.sha1hex(msg) end\n"
    "  z[#z + 1] = now; z[#z + 1] = tag\n"
    "  h[#h + 1] = tag\n"
    "  h[#h + 1] = '[' .. msg .. ', ' .. jstr(ex) .. ', ' .. jstr(rk) .. ']'\n"
    "  out[#out + 1] = q; out[#out + 1] = tag; out[#out + 1] = count(tag, redel)\n"
    "  out[#out + 1] = msg\n"
    "end\n"
    "if ARGV[3] == '1' then record(ARGV[5], ARGV[4]) end\n"
    "local i = 5\n"
    "while want > 0 and i <= #KEYS do\n"
    "  local got = redis.call('RPOP', KEYS[i], want)\n"
    "  if got then\n"
    "    for _, m in ipairs(got) do record(ARGV[1 + i], m) end\n"
    "    want = want - #got\n"
    "  end\n"
    "  i = i + 1\n"
    "end\n"
    "if #z > 0 then\n"
    "  redis.call('ZADD', KEYS[2], unpack(z))\n"
    "  redis.call('HSET', KEYS[1], unpack(h))\n"
    "end\n"
    "return out\n";

static const char lua_move[] =
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])\n"
    "local dead = 0\n"
    "for _, m in ipairs(due) do\n"
    "  local ok, d = pcall(cjson.decode, m)\n"
    "  if ok and type(d) == 'table' and type(d['k']) == 'string' and type(d['m']) == 'string' "
    "then\n"
    "    redis.call('LPUSH', d['k'], d['m'])\n"
    "  else\n"
    "    redis.call('LPUSH', KEYS[2], cjson.encode({queue = '', dead_at = ARGV[3], message = m,\n"
    "               reason = 'unreadable member of " CEL_REDIS_KEY_DELAYED "'}))\n"
    "    dead = dead + 1\n"
    "  end\n"
    "  redis.call('ZREM', KEYS[1], m)\n"
    "end\n"
    "local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')\n"
    "return {#due, nxt[2] or false, dead}\n";

static const char lua_restore[] = "local s = redis.call('ZSCORE', KEYS[2], ARGV[1])\n"
                                  "if s and tonumber(s) > tonumber(ARGV[3]) then return 0 end\n"
                                  "redis.call('ZREM', KEYS[2], ARGV[1])\n"
                                  "if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then\n"
                                  "  redis.call('RPUSH', KEYS[3], ARGV[2])\n"
                                  "  redis.call('HINCRBY', KEYS[4], ARGV[1], 1)\n"
                                  "  return 1\n"
                                  "end\n"
                                  "return 0\n";

/* Walks the set a slice at a time (a whole 100k-member set would be
 * copied into Lua's memory at once); removed members shift the rest
 * left, so the index advances only past what stays. */
static const char lua_delayed[] =
    "local n, i = 0, 0\n"
    "while true do\n"
    "  local ms = redis.call('ZRANGE', KEYS[1], i, i + 999)\n"
    "  if #ms == 0 then break end\n"
    "  local gone = 0\n"
    "  for _, m in ipairs(ms) do\n"
    "    if string.find(m, ARGV[1], 1, true) then\n"
    "      n = n + 1\n"
    "      if ARGV[2] == '1' then redis.call('ZREM', KEYS[1], m); gone = gone + 1 end\n"
    "    end\n"
    "  end\n"
    "  i = i + #ms - gone\n"
    "end\n"
    "return n\n";

static const char lua_restore_at[] = "redis.call('ZREM', KEYS[2], ARGV[1])\n"
                                     "if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then\n"
                                     "  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])\n"
                                     "  redis.call('HINCRBY', KEYS[4], ARGV[1], 1)\n"
                                     "  return 1\n"
                                     "end\n"
                                     "return 0\n";

static const char lua_unlock[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                                 "  return redis.call('DEL', KEYS[1])\n"
                                 "end\n"
                                 "return 0\n";

/* ---- rate limits (issue 7) ----
 * core/rate.c's bucket, in Lua. Numbers are doubles here: the stamp is
 * written with %.0f, as tostring() would round it to 6 digits. */
static const char lua_rate[] =
    "if redis.replicate_commands then redis.replicate_commands() end\n"
    "local rate = tonumber(ARGV[1])\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local v = redis.call('HMGET', KEYS[1], 't', 's')\n"
    "local tokens, stamp = tonumber(v[1]), tonumber(v[2])\n"
    "if not tokens or not stamp then tokens, stamp = 1, now end\n"
    "if now > stamp then tokens = tokens + (now - stamp) * rate / 1e6 end\n"
    "if tokens > 1 then tokens = 1 end\n"
    "if tokens >= 1 - 1e-9 then\n"
    "  tokens = math.max(tokens - 1, 0)\n"
    "  redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens),\n"
    "             's', string.format('%.0f', now))\n"
    "  redis.call('PEXPIRE', KEYS[1], math.ceil(1000 / rate) + 60000)\n"
    "  return 0\n"
    "end\n"
    "return math.max(1, math.ceil((1 - tokens) * 1e6 / rate))\n";

static const char lua_reply[] = "if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then\n"
                                "  redis.call('LPUSH', KEYS[2], ARGV[2])\n"
                                "  return 1\n"
                                "end\n"
                                "return 0\n";

/* ---- periodic entries (beat) ---- */
#define SCHED_STATE_PATTERN "'^([01]) (%-?%d+) (%d+) (%-?%d+)$'"

static const char lua_sched_put[] =
    "local name, last, total = ARGV[1], '0', '0'\n"
    "if redis.call('HEXISTS', KEYS[1], name) == 1 then\n"
    "  if ARGV[4] ~= '1' then return 0 end\n"
    "  local _, l, t = string.match(redis.call('HGET', KEYS[2], name) or '', " SCHED_STATE_PATTERN
    ")\n"
    "  if l then last, total = l, t end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], name, ARGV[2])\n"
    "redis.call('HSET', KEYS[2], name, ARGV[3] .. ' ' .. last .. ' ' .. total .. ' ' .. ARGV[5])\n"
    "redis.call('INCR', KEYS[3])\n"
    "return 1\n";

static const char lua_sched_edit[] =
    "local name = ARGV[1]\n"
    "if redis.call('HEXISTS', KEYS[1], name) == 0 then return 0 end\n"
    "if ARGV[2] == '-' then\n"
    "  redis.call('HDEL', KEYS[1], name)\n"
    "  redis.call('HDEL', KEYS[2], name)\n"
    "else\n"
    "  local _, l, t = string.match(redis.call('HGET', KEYS[2], name) or '', " SCHED_STATE_PATTERN
    ")\n"
    "  redis.call('HSET', KEYS[2], name,\n"
    "             ARGV[2] .. ' ' .. (l or '0') .. ' ' .. (t or '0') .. ' ' .. ARGV[3])\n"
    "end\n"
    "redis.call('INCR', KEYS[3])\n"
    "return 1\n";

static const char lua_lease[] = "local h = redis.call('GET', KEYS[1])\n"
                                "if not h then\n"
                                "  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
                                "  return 1\n"
                                "end\n"
                                "if h == ARGV[1] then\n"
                                "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
                                "  return 1\n"
                                "end\n"
                                "return 0\n";

static const char lua_sched_fire[] =
    "local name = ARGV[1]\n"
    "local h = redis.call('GET', KEYS[3])\n"
    "if h ~= ARGV[2] then return {'lease', h or ''} end\n"
    "if redis.call('HEXISTS', KEYS[1], name) == 0 then return {'missing', ''} end\n"
    "local en, last, total, upd =\n"
    "  string.match(redis.call('HGET', KEYS[2], name) or '', " SCHED_STATE_PATTERN ")\n"
    "if not en then en, last, total, upd = '1', '0', '0', '0' end\n"
    "if en ~= '1' then return {'disabled', ''} end\n"
    "if last ~= ARGV[3] then return {'ran', last} end\n"
    "if ARGV[5] == '1' then\n"
    "  redis.call('SADD', KEYS[5], ARGV[8])\n"
    "  if ARGV[7] ~= '' then\n"
    "    redis.call('ZADD', KEYS[4], ARGV[7], ARGV[6])\n"
    "  else\n"
    "    redis.call('LPUSH', KEYS[4], ARGV[6])\n"
    "  end\n"
    "  total = string.format('%d', tonumber(total) + 1)\n"
    "end\n"
    "redis.call('HSET', KEYS[2], name, en .. ' ' .. ARGV[4] .. ' ' .. total .. ' ' .. upd)\n"
    "return {'ok', ''}\n";

const char *const cel__redis_broker_scripts[CEL_REDIS_NSCRIPTS + 1] = {
    [CEL_REDIS_SCRIPT_POP] = lua_pop,
    [CEL_REDIS_SCRIPT_MOVE] = lua_move,
    [CEL_REDIS_SCRIPT_RESTORE] = lua_restore,
    [CEL_REDIS_SCRIPT_UNLOCK] = lua_unlock,
    [CEL_REDIS_SCRIPT_RATE] = lua_rate,
    [CEL_REDIS_SCRIPT_DELAYED] = lua_delayed,
    [CEL_REDIS_SCRIPT_RESTORE_AT] = lua_restore_at,
    [CEL_REDIS_SCRIPT_REPLY] = lua_reply,
    [CEL_REDIS_SCRIPT_SCHED_PUT] = lua_sched_put,
    [CEL_REDIS_SCRIPT_SCHED_EDIT] = lua_sched_edit,
    [CEL_REDIS_SCRIPT_LEASE] = lua_lease,
    [CEL_REDIS_SCRIPT_SCHED_FIRE] = lua_sched_fire,
    [CEL_REDIS_NSCRIPTS] = NULL,
};
