/* lost_update.c: lost update on a counter read and written by separate atomic operations.
 *
 * The compressor adds each job's output size to bytes_total with an atomic load, the
 * compression, then an atomic store: each access is atomic, the update is not. When the
 * trailer writer adds its bytes between the compressor's load and store, its update is lost
 * and the final total is wrong.
 *
 *   compressor: seen = load(total);  ...compress...;  store(total, seen + n);
 *   trailer:               seen = load(total); store(total, seen + TRAILER);
 *
 * Exit: 0 when the bug did not show, SIGABRT (the final assert) when it did.
 * Fix: atomic_fetch_add, or hold a lock across the read-modify-write. */
#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include "zoo.h"

#define NJOBS 64
#define JOB_BYTES 1000
#define TRAILER_BYTES 7

static pthread_mutex_t q_mu = PTHREAD_MUTEX_INITIALIZER;
static int next_job;
static int trailer_written;
static _Atomic long bytes_total;
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned out_sum;
static pthread_barrier_t start;

static void *compressor(void *arg)
{
    pthread_barrier_wait(&start);
    for (;;) {
        pthread_mutex_lock(&q_mu);
        int job = next_job < NJOBS ? next_job++ : -1;
        pthread_mutex_unlock(&q_mu);
        if (job < 0)
            break;
        long seen = atomic_load(&bytes_total); /* BUG: read ... */
        unsigned h = zoo_crunch(5000u + (unsigned)job);
        usleep(60); /* compress: the window */
        pthread_mutex_lock(&out_mu);
        out_sum ^= h; /* write the compressed block */
        pthread_mutex_unlock(&out_mu);
        atomic_store(&bytes_total, seen + JOB_BYTES); /* BUG: ... modify, write */
        pthread_mutex_lock(&q_mu);
        int done = trailer_written;
        pthread_mutex_unlock(&q_mu);
        if (done)
            break;
        usleep(400); /* wait for input */
    }
    return NULL;
}

static void *trailer(void *arg)
{
    pthread_barrier_wait(&start);
    zoo_other_work(12);
    pthread_mutex_lock(&q_mu);
    int jobs = next_job;
    pthread_mutex_unlock(&q_mu);
    long seen = atomic_load(&bytes_total); /* BUG: racing read ... */
    atomic_store(&bytes_total, seen + TRAILER_BYTES); /* ... and write */
    pthread_mutex_lock(&q_mu);
    trailer_written = 1;
    pthread_mutex_unlock(&q_mu);
    return (void *)(long)jobs;
}

int main(void)
{
    pthread_t t1, t2;
    pthread_barrier_init(&start, NULL, 2);
    pthread_create(&t1, NULL, compressor, NULL);
    pthread_create(&t2, NULL, trailer, NULL);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    long expect = (long)next_job * JOB_BYTES + TRAILER_BYTES;
    assert(atomic_load(&bytes_total) == expect); /* fails when an update was lost */
    return 0;
}
