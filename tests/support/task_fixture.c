/* task_fixture.c - see task_fixture.h. */
#include "task_fixture.h"

#include "testing.h"

void cel_test_task_setup(struct cel_test_task *f, const struct cel_task_spec *spec,
                         void (*edit)(json_t *root))
{
    char *text = NULL;
    char err[256];
    ASSERT_OK(cel__message_build(spec, &text, NULL, NULL, err, sizeof err));
    if (edit) {
        json_t *root = json_loads(text, 0, NULL);
        ASSERT(root);
        edit(root);
        free(text);
        text = json_dumps(root, 0);
        json_decref(root);
        ASSERT(text);
    }
    ASSERT_OK(cel__message_parse(text, strlen(text), NULL, &f->msg, err, sizeof err));
    free(text);
    cel__task_init(&f->task, &f->msg, "w1@host");
}

void cel_test_task_teardown(struct cel_test_task *f)
{
    cel__task_release(&f->task);
    cel__message_release(&f->msg);
}
