/*
 * redis_wake.c - waking the consumer's I/O thread early for a message
 * this handle parks in celeriac.delayed.
 *
 * The I/O thread sleeps in BRPOP (or, with a full window, in io_wait())
 * for up to CEL_REDIS_BRPOP_TIMEOUT_MS and learns due times only when it
 * checks the delayed set, so a retry due in 0.2 s would run up to a
 * second late. The parker knows the due time: it leaves it as a hint and,
 * only when the thread would otherwise look later than that, wakes it.
 * The eventfd `kick` wakes io_wait(), but not the server-side BRPOP (the
 * thread waits for that reply in poll(), yet the reply comes only when
 * the server sends it), so a BRPOP is ended by pushing a token on the
 * handle's own wake-up list, which every BRPOP of the thread also names.
 * Cost: one atomic per park; one more round trip only for a park due
 * before the thread's next look, at most about one per wait since the
 * thread then waits only until that due time.
 *
 * Messages parked by other processes are not seen here: the periodic
 * check finds them, then times them precisely.
 */
#include "broker/redis_internal.h"
#include "core/log.h"

static void lower_hint(struct redis_broker *b, int64_t due_ms)
{
    long long cur = atomic_load(&b->wake_hint_ms);
    while ((cur == 0 || due_ms < cur) &&
           !atomic_compare_exchange_weak(&b->wake_hint_ms, &cur, (long long)due_ms))
        ;
}

/* LPUSH a token on the wake-up list, on the caller's connection. */
static void push_token(struct redis_broker *b)
{
    struct cel_redis_cmds q = {0};
    const char *push[] = {"LPUSH", b->wake_key, "1"};
    const char *expire[] = {"PEXPIRE", b->wake_key, CEL_REDIS_WAKE_TTL_MS};
    struct cel_errbuf err = {0};
    redisReply **rs = NULL;
    int rc = cel__redis_cmds_addv(&q, 3, push);
    if (rc == CEL_OK)
        rc = cel__redis_cmds_addv(&q, 3, expire);
    if (rc == CEL_OK)
        rc = cel__redis_exec(&b->main, &q, &rs, CEL_REDIS_OP_BUDGET_MS, &err);
    if (rc == CEL_OK)
        cel__redis_replies_free(rs, q.n);
    else
        CEL_DEBUG(CEL_REDIS_COMP, "cannot wake the consumer for a parked message: %s",
                  err.msg[0] ? err.msg : "out of memory");
    cel__redis_cmds_release(&q);
}

void cel__redis_wake_for(struct redis_broker *b, int64_t due_ms)
{
    lower_hint(b, due_ms > 0 ? due_ms : 1);
    long long wake_at = atomic_load(&b->io_wake_at_ms);
    if (wake_at == 0 || due_ms >= wake_at)
        return; /* awake (takes the hint before it blocks), or looks in time */
    /* Claim the wake-up: a burst of parks sends one token, the others
     * find the thread "awake" and leave it their hints. */
    if (!atomic_compare_exchange_strong(&b->io_wake_at_ms, &wake_at, 0))
        return; /* it woke meanwhile, or another park claimed it */
    if (atomic_load(&b->io_in_brpop))
        push_token(b);
    else
        cel__redis_eventfd_signal(b->kick);
}

int64_t cel__redis_wake_take(struct redis_broker *b)
{
    return atomic_exchange(&b->wake_hint_ms, 0);
}

bool cel__redis_wake_arm(struct redis_broker *b, int64_t wake_at_ms, bool brpop)
{
    atomic_store(&b->io_in_brpop, brpop);
    atomic_store(&b->io_wake_at_ms, (long long)(wake_at_ms > 0 ? wake_at_ms : 1));
    long long hint = atomic_load(&b->wake_hint_ms);
    if (hint != 0 && hint < wake_at_ms) {
        atomic_store(&b->io_wake_at_ms, 0);
        return false;
    }
    return true;
}

void cel__redis_wake_awake(struct redis_broker *b)
{
    atomic_store(&b->io_wake_at_ms, 0);
}
