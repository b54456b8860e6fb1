/*
 * beat_lease.c - the leader lease. Every beat process tries to take the
 * store's "beat" lease every ttl/3; the holder renews it at that pace, so
 * it keeps it through two failed renewals, and a standby takes over at
 * most a ttl after the leader died (at once when the leader stopped
 * cleanly and released it). The store fences every send with the lease
 * too (sched_fire), so a leader that lost the lease without knowing it
 * yet cannot send.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "beat/beat_internal.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/uuid.h"

void cel__beat_holder_init(cel_beat *b)
{
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0 || !host[0])
        snprintf(host, sizeof host, "localhost");
    char uuid[CEL_UUID_STRLEN + 1];
    cel__uuid4(uuid);
    /* Eight random hex digits tell apart two processes that reuse a pid
     * (a container restarted) on one host name. */
    snprintf(b->holder, sizeof b->holder, "%s:%ld:%.8s", host, (long)getpid(), uuid);
}

void cel__beat_lost(cel_beat *b, const char *why)
{
    if (!atomic_load(&b->leader))
        return;
    atomic_store(&b->leader, 0);
    b->lease_until_ms = 0;
    b->lease_next_ms = 0; /* ask again now: maybe it was only a slow store */
    CEL_WARN(CEL_BEAT_COMP, "beat: leadership lost (%s)", why);
}

static void gained(cel_beat *b)
{
    atomic_store(&b->leader, 1);
    b->said_standby = false;
    CEL_INFO(CEL_BEAT_COMP, "beat: leadership gained (%s)", b->holder);
    if (!b->ever_led) {
        b->reboot_pending = true;
        b->first_led_us = cel__wall_us() / 1000000 * 1000000;
    }
    b->ever_led = true;
    /* Another leader may have sent runs meanwhile: read them again. */
    b->loaded = false;
}

int cel__beat_lease_step(cel_beat *b, int64_t now_ms)
{
    if (now_ms < b->lease_next_ms)
        return CEL_OK;
    bool held = false;
    int rc = b->broker->ops->lease_acquire(b->broker, CEL_BEAT_LEASE, b->holder, b->ttl_ms, &held);
    if (rc != CEL_OK) {
        /* The store cannot answer: keep leading while the lease we hold
         * has not run out (the store would fence a send anyway). */
        if (atomic_load(&b->leader) && now_ms >= b->lease_until_ms)
            cel__beat_lost(b, "the lease ran out while the store was failing");
        return rc;
    }
    b->lease_next_ms = now_ms + b->ttl_ms / 3;
    if (held) {
        /* Counted from before the call: the store's clock started the
         * ttl no earlier than that. */
        b->lease_until_ms = now_ms + b->ttl_ms;
        if (!atomic_load(&b->leader))
            gained(b);
    } else if (atomic_load(&b->leader)) {
        cel__beat_lost(b, "another beat holds the lease");
        b->lease_next_ms = now_ms + b->ttl_ms / 3;
    } else if (!b->said_standby) {
        CEL_INFO(CEL_BEAT_COMP, "beat: standing by: another beat leads");
        b->said_standby = true;
    }
    return CEL_OK;
}

void cel__beat_lease_release(cel_beat *b)
{
    if (!b->broker || !atomic_load(&b->leader))
        return;
    int rc = b->broker->ops->lease_release(b->broker, CEL_BEAT_LEASE, b->holder);
    atomic_store(&b->leader, 0);
    if (rc != CEL_OK)
        CEL_WARN(CEL_BEAT_COMP,
                 "beat: cannot release the lease (a standby takes over when it "
                 "runs out): %s",
                 cel__broker_errmsg(b->broker));
    else
        CEL_INFO(CEL_BEAT_COMP, "beat: leadership released");
}
