/* double_free.c: double free of a shared buffer released by two threads.
 *
 * The server fills a batch buffer, then releases it; the reaper releases idle buffers. Both
 * use release(): read the pointer in one critical section, free it, clear the pointer in
 * another. When the two releases overlap, both free the same buffer; glibc's heap checks
 * abort the process ("double free or corruption").
 *
 *   release: lock; b = g_buf; unlock;  ...flush b...;  free(b); lock; g_buf = NULL; unlock;
 *
 * Exit: 0 when the bug did not show, SIGABRT (glibc heap check) when it did; rarely SIGSEGV
 * when the freed block was reused in between.
 * Fix: take the buffer and clear the pointer in one critical section. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zoo.h"

#define BUF_SIZE 4096 /* above the tcache and fastbin sizes: a double free is always caught */

static pthread_mutex_t buf_mu = PTHREAD_MUTEX_INITIALIZER;
static char *g_buf;
static int reaped;
static pthread_barrier_t start;

static void release(unsigned flush_us)
{
    pthread_mutex_lock(&buf_mu);
    char *b = g_buf; /* BUG: read the pointer ... */
    pthread_mutex_unlock(&buf_mu);
    if (!b)
        return;
    if (flush_us)
        usleep(flush_us); /* flush the batch: the window */
    free(b); /* BUG: ... free it (twice when both threads read the same b) ... */
    pthread_mutex_lock(&buf_mu);
    g_buf = NULL; /* ... and only then clear it */
    pthread_mutex_unlock(&buf_mu);
}

static void *server(void *arg)
{
    pthread_barrier_wait(&start);
    for (;;) {
        pthread_mutex_lock(&buf_mu);
        int done = reaped;
        if (!done)
            g_buf = calloc(1, BUF_SIZE); /* a new batch */
        pthread_mutex_unlock(&buf_mu);
        if (done)
            break;
        for (int i = 0; i < 4; i++) {
            pthread_mutex_lock(&buf_mu);
            if (g_buf)
                memset(g_buf + i * 512, 'a' + i, 512);
            pthread_mutex_unlock(&buf_mu);
        }
        release(100);
        usleep(400); /* wait for the next batch */
    }
    return NULL;
}

static void *reaper(void *arg)
{
    pthread_barrier_wait(&start);
    zoo_other_work(12);
    release(0); /* BUG: races with the server's release */
    pthread_mutex_lock(&buf_mu);
    reaped = 1;
    pthread_mutex_unlock(&buf_mu);
    return NULL;
}

int main(void)
{
    pthread_t t1, t2;
    pthread_barrier_init(&start, NULL, 2);
    pthread_create(&t1, NULL, server, NULL);
    pthread_create(&t2, NULL, reaper, NULL);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    return 0;
}
