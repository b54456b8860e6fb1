/* inflight.c - see inflight.h. */
#include "worker/inflight.h"

#include <stdlib.h>
#include <string.h>

#include "proto/message.h"

struct cel_inflight *cel__inflight_new(void)
{
    struct cel_inflight *f = calloc(1, sizeof *f);
    if (f)
        f->slot = -1;
    return f;
}

void cel__followup_free(struct cel_followup *u)
{
    if (!u)
        return;
    free(u->queue);
    free(u->task_id);
    free(u->body);
    free(u->group_id);
    free(u->root_id);
    free(u->entry);
    free(u->completed);
    free(u);
}

void cel__inflight_free(struct cel_inflight *f)
{
    if (!f)
        return;
    cel__delivery_release(&f->d);
    while (f->followups) {
        struct cel_followup *u = f->followups;
        f->followups = u->next;
        cel__followup_free(u);
    }
    free(f->task_id);
    free(f->task_name);
    free(f->group_id);
    free(f->parent_id);
    free(f->crash_text);
    free(f);
}

void cel__inflight_learn_ids(struct cel_inflight *f)
{
    if (f->ids_known)
        return;
    f->ids_known = true;
    struct cel_message m;
    char err[64];
    const struct cel_message_limits headers_only = {.headers_only = true};
    if (cel__message_parse(f->d.body, f->d.len, &headers_only, &m, err, sizeof err) != 0)
        return;
    f->task_id = strdup(m.id);
    f->task_name = strdup(m.task);
    f->group_id = m.group_id ? strdup(m.group_id) : NULL;
    f->parent_id = m.parent_id ? strdup(m.parent_id) : NULL;
    cel__message_release(&m);
}

void cel__held_add(struct cel_held *h, struct cel_inflight *f)
{
    f->prev = NULL;
    f->next = h->head;
    if (h->head)
        h->head->prev = f;
    h->head = f;
    h->count++;
}

void cel__held_remove(struct cel_held *h, struct cel_inflight *f)
{
    if (f->prev)
        f->prev->next = f->next;
    else if (h->head == f)
        h->head = f->next;
    else
        return; /* not on the list */
    if (f->next)
        f->next->prev = f->prev;
    f->prev = f->next = NULL;
    h->count--;
}

void cel__held_push_ready(struct cel_held *h, struct cel_inflight *f)
{
    f->ready_next = NULL;
    if (h->ready_tail)
        h->ready_tail->ready_next = f;
    else
        h->ready_head = f;
    h->ready_tail = f;
    h->ready_count++;
}

void cel__held_push_ready_front(struct cel_held *h, struct cel_inflight *f)
{
    f->ready_next = h->ready_head;
    h->ready_head = f;
    if (!h->ready_tail)
        h->ready_tail = f;
    h->ready_count++;
}

struct cel_inflight *cel__held_pop_ready(struct cel_held *h)
{
    struct cel_inflight *f = h->ready_head;
    if (!f)
        return NULL;
    h->ready_head = f->ready_next;
    if (!h->ready_head)
        h->ready_tail = NULL;
    f->ready_next = NULL;
    h->ready_count--;
    return f;
}
