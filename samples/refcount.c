/* refcount.c: reference-count race, decrement and test-for-zero in separate critical sections.
 *
 * The worker takes a reference to the shared session, uses it and drops it; main drops the
 * session's initial reference once. session_put() decrements in one critical section and
 * tests for zero in another: when both threads decrement before either tests, both see zero
 * and both destroy the session; the second destroy frees its payload again and glibc aborts.
 *
 *   put: lock; s->refs--; unlock;  ...trace...;  lock; dead = s->refs == 0; unlock; if (dead) destroy
 *
 * Exit: 0 when the bug did not show, SIGABRT (glibc "double free") when it did; rarely
 * SIGSEGV when the freed session was reused in between.
 * Fix: decrement and test in one critical section (or atomic_fetch_sub() == 1). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "zoo.h"

struct session {
    long id;
    long pad; /* the allocator may reuse the first 16 bytes of a freed block */
    int refs;
    char *payload; /* 4 KiB: a double free of it is always caught */
};

static pthread_mutex_t ref_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;
static struct session *g_session; /* the table's entry, holds one reference */
static pthread_barrier_t start;

static void session_destroy(struct session *s)
{
    free(s->payload);
    free(s);
}

static struct session *session_get(void)
{
    pthread_mutex_lock(&table_mu);
    struct session *s = g_session;
    if (s) {
        pthread_mutex_lock(&ref_mu);
        s->refs++;
        pthread_mutex_unlock(&ref_mu);
    }
    pthread_mutex_unlock(&table_mu);
    return s;
}

static void session_put(struct session *s, unsigned trace_us)
{
    pthread_mutex_lock(&ref_mu);
    s->refs--; /* BUG: decrement ... */
    pthread_mutex_unlock(&ref_mu);
    if (trace_us)
        usleep(trace_us); /* trace the release: the window */
    pthread_mutex_lock(&ref_mu);
    int dead = s->refs == 0; /* BUG: ... and test, apart */
    pthread_mutex_unlock(&ref_mu);
    if (dead)
        session_destroy(s);
}

static void *worker(void *arg)
{
    pthread_barrier_wait(&start);
    long sum = 0;
    struct session *s;
    while ((s = session_get()) != NULL) {
        sum += s->id + s->payload[0];
        session_put(s, 100);
        usleep(400); /* next request */
    }
    return (void *)sum;
}

int main(void)
{
    pthread_t t;
    struct session *s = calloc(1, sizeof *s);
    s->id = 42;
    s->refs = 1;
    s->payload = calloc(1, 4096);
    g_session = s;
    pthread_barrier_init(&start, NULL, 2);
    pthread_create(&t, NULL, worker, NULL);
    pthread_barrier_wait(&start);

    zoo_other_work(12);
    pthread_mutex_lock(&table_mu); /* remove the session from the table */
    g_session = NULL;
    pthread_mutex_unlock(&table_mu);
    session_put(s, 0); /* BUG: races with the worker's put */

    pthread_join(t, NULL);
    return 0;
}
