/* lost_wakeup.c: lost wake-up, a condition variable waited on without a predicate.
 *
 * The worker checks the shutdown flag, flushes its batch, then waits for the next kick
 * without re-checking the flag under the same lock. The kicker kicks it periodically until
 * shutdown. If main sets shutdown and signals while the worker is flushing, the signal finds
 * nobody waiting and is lost; no kick ever comes again and the worker waits forever.
 *
 *   worker: lock; s = shutdown; unlock; if (s) break;  ...flush...;  lock; cond_wait; unlock
 *   main:              lock; shutdown = 1; cond_signal; unlock;
 *
 * Exit: 0 when the bug did not show; hangs when it did (the caller's timeout kills it).
 * Fix: while (!shutdown && !kicked) cond_wait, in the critical section that checks. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "zoo.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t kick = PTHREAD_COND_INITIALIZER;
static int shutdown_requested;
static long flushed;
static pthread_barrier_t start;

static void *worker(void *arg)
{
    pthread_barrier_wait(&start);
    for (;;) {
        pthread_mutex_lock(&mu);
        int s = shutdown_requested; /* BUG: the predicate is checked here ... */
        pthread_mutex_unlock(&mu);
        if (s)
            break;
        flushed += zoo_crunch(2000) & 1;
        usleep(200); /* flush the batch: the window */
        pthread_mutex_lock(&mu);
        pthread_cond_wait(&kick, &mu); /* BUG: ... but not here */
        pthread_mutex_unlock(&mu);
    }
    return NULL;
}

static void *kicker(void *arg)
{
    pthread_barrier_wait(&start);
    for (;;) {
        pthread_mutex_lock(&mu);
        int s = shutdown_requested;
        if (!s)
            pthread_cond_signal(&kick);
        pthread_mutex_unlock(&mu);
        if (s)
            break;
        usleep(600); /* new data every so often */
    }
    return NULL;
}

int main(void)
{
    pthread_t tw, tk;
    pthread_barrier_init(&start, NULL, 3);
    pthread_create(&tw, NULL, worker, NULL);
    pthread_create(&tk, NULL, kicker, NULL);
    pthread_barrier_wait(&start);
    zoo_other_work(12);
    pthread_mutex_lock(&mu);
    shutdown_requested = 1;
    pthread_cond_signal(&kick); /* BUG: lost if the worker is not waiting yet */
    pthread_mutex_unlock(&mu);
    pthread_join(tk, NULL);
    pthread_join(tw, NULL);
    return 0;
}
