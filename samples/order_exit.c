/* order_exit.c: order violation at exit (the PBZip2 bug).
 *
 * main waits until every block is compressed, then frees the work queue and exits, without
 * joining the consumer. The consumer, after reporting its last block, goes back to the queue
 * to find out that the work is over: if main freed the queue in between, it dereferences
 * the NULL fifo.
 *
 *   consumer: lock(done_mu); done++; unlock;  ...progress...;  lock(fifo->mut)
 *   main:     lock(done_mu); all = done == N; unlock;  queue_delete(fifo); fifo = NULL;
 *
 * Exit: 0 when the bug did not show, SIGSEGV when it did.
 * Fix: join the consumer before deleting the queue. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "zoo.h"

#define NBLOCKS 8

struct queue {
    pthread_mutex_t *mut;
    pthread_cond_t *not_empty;
    int blocks[NBLOCKS];
    int head, tail;
    int all_queued;
};

static struct queue *fifo;
static pthread_mutex_t done_mu = PTHREAD_MUTEX_INITIALIZER;
static int blocks_done;
static unsigned checksum;

static struct queue *queue_new(void)
{
    struct queue *q = calloc(1, sizeof *q);
    q->mut = malloc(sizeof *q->mut);
    q->not_empty = malloc(sizeof *q->not_empty);
    pthread_mutex_init(q->mut, NULL);
    pthread_cond_init(q->not_empty, NULL);
    return q;
}

static void queue_delete(struct queue *q)
{
    pthread_mutex_destroy(q->mut);
    pthread_cond_destroy(q->not_empty);
    free(q->mut);
    free(q->not_empty);
    free(q);
}

static void *consumer(void *arg)
{
    for (;;) {
        pthread_mutex_lock(fifo->mut); /* BUG: use after main deleted the queue */
        while (fifo->head == fifo->tail) {
            if (fifo->all_queued) {
                pthread_mutex_unlock(fifo->mut);
                return NULL;
            }
            pthread_cond_wait(fifo->not_empty, fifo->mut);
        }
        int block = fifo->blocks[fifo->head++];
        pthread_mutex_unlock(fifo->mut);

        unsigned sum = zoo_crunch(20000u + (unsigned)block); /* compress */
        usleep(300);

        pthread_mutex_lock(&done_mu);
        checksum ^= sum;
        blocks_done++; /* main may now see the work as complete */
        pthread_mutex_unlock(&done_mu);
        usleep(100); /* update the progress meter: the window */
    }
}

int main(void)
{
    pthread_t t;
    fifo = queue_new();
    pthread_create(&t, NULL, consumer, NULL);
    pthread_detach(t); /* BUG: never joined */

    for (int i = 0; i < NBLOCKS; i++) {
        zoo_crunch(10000); /* read a block */
        pthread_mutex_lock(fifo->mut);
        fifo->blocks[fifo->tail++] = i;
        pthread_cond_signal(fifo->not_empty);
        pthread_mutex_unlock(fifo->mut);
    }
    pthread_mutex_lock(fifo->mut);
    fifo->all_queued = 1;
    pthread_cond_signal(fifo->not_empty);
    pthread_mutex_unlock(fifo->mut);

    for (;;) { /* wait for the output writer */
        pthread_mutex_lock(&done_mu);
        int all = blocks_done == NBLOCKS;
        pthread_mutex_unlock(&done_mu);
        if (all)
            break;
        usleep(600);
    }
    queue_delete(fifo); /* BUG: frees the queue the consumer still uses */
    fifo = NULL;
    usleep(2000); /* write the trailer, close the output */
    printf("checksum %08x\n", checksum);
    return 0;
}
