/*
 * wait.c - waiting for an asynchronous completion from a thread that may
 * block: emmd_wait (until it comes) and emmd_twait (up to a timeout, the
 * control socket's commands: the completion may come after the waiter gave
 * up, so the wait is refcounted and freed by whichever of the two is last).
 *
 * Locking: each wait's own mutex guards its fields; nothing else is held.
 */
#include <errno.h>
#include <stdlib.h>

#include "clock.h"
#include "emmd.h"

void
emmd_wait_init(struct emmd_wait *w)
{
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->done = 0;
    w->err = 0;
}

void
emmd_wait_done(void *arg, int err)
{
    struct emmd_wait *w = arg;
    pthread_mutex_lock(&w->lock);
    w->done = 1;
    w->err = err;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

int
emmd_wait(struct emmd_wait *w)
{
    pthread_mutex_lock(&w->lock);
    while (!w->done)
        pthread_cond_wait(&w->cond, &w->lock);
    int err = w->err;
    pthread_mutex_unlock(&w->lock);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    return err;
}

struct emmd_twait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done, err, refs;
    uint64_t value;
    void *payload; /* heap, the completion's: the waiter's once it took it, else freed with w */
};

struct emmd_twait *
emmd_twait_new(void)
{
    struct emmd_twait *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->refs = 2; /* the waiter's and the completion's */
    return w;
}

static void
twait_put(struct emmd_twait *w)
{
    pthread_mutex_lock(&w->lock);
    int last = --w->refs == 0;
    pthread_mutex_unlock(&w->lock);
    if (last) {
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
        free(w->payload);
        free(w);
    }
}

void
emmd_twait_done(struct emmd_twait *w, int err, uint64_t value)
{
    pthread_mutex_lock(&w->lock);
    w->done = 1;
    w->err = err;
    w->value = value;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    twait_put(w);
}

void
emmd_twait_done_payload(struct emmd_twait *w, int err, void *payload)
{
    pthread_mutex_lock(&w->lock);
    w->payload = payload;
    pthread_mutex_unlock(&w->lock);
    emmd_twait_done(w, err, 0);
}

void *
emmd_twait_payload(struct emmd_twait *w, int timeout_ms)
{
    pthread_mutex_lock(&w->lock);
    w->refs++; /* held across emmd_twait */
    pthread_mutex_unlock(&w->lock);
    void *p = NULL;
    if (emmd_twait(w, timeout_ms, NULL, NULL) == 0) {
        pthread_mutex_lock(&w->lock);
        p = w->payload;
        w->payload = NULL;
        pthread_mutex_unlock(&w->lock);
    }
    twait_put(w);
    return p;
}

int
emmd_twait(struct emmd_twait *w, int timeout_ms, int *err, uint64_t *value)
{
    struct timespec ts = emm_deadline_after_ms(CLOCK_REALTIME, (uint64_t)timeout_ms);
    int rc = 0;
    pthread_mutex_lock(&w->lock);
    while (!w->done && rc == 0)
        rc = pthread_cond_timedwait(&w->cond, &w->lock, &ts);
    int done = w->done;
    if (done && err != NULL)
        *err = w->err;
    if (done && value != NULL)
        *value = w->value;
    pthread_mutex_unlock(&w->lock);
    twait_put(w);
    return done ? 0 : -ETIMEDOUT;
}
