/* points_flag.c: atomicity violation with plain loads and stores only (no pthread call in
 * the race), seen by Aviso only through sharing events listed in points_flag.points.
 *
 * The parser checks that the request still has a body, parses the header, then reads the
 * body. The canceller drops the body (a plain store of NULL) at any time. Between the check
 * and the read there is no pthread call, so no synchronization event orders the two threads:
 * only the sharing events at the three lines marked BUG make the race visible.
 *
 *   parser:    if (r->body != NULL) { ...parse header...; sum += r->body[0]; }
 *   canceller:                  g_req->body = NULL;
 *
 * Exit: 0 when the bug did not show, SIGSEGV when it did.
 * Fix: read r->body once into a local (and keep the body alive), or lock. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "zoo.h"

struct request {
    char *volatile body; /* volatile: every access is a real load or store */
    volatile int cancelled;
};

static struct request *g_req;
static pthread_barrier_t start;

static void *parser(void *arg)
{
    struct request *r = g_req;
    long sum = 0;
    pthread_barrier_wait(&start);
    while (!r->cancelled) {
        if (r->body != NULL) { /* BUG: check ... */
            zoo_crunch(20000);
            usleep(100); /* parse the header: the window */
            sum += r->body[0]; /* BUG: ... then use */
        }
        usleep(400); /* next request */
    }
    return (void *)sum;
}

static void *canceller(void *arg)
{
    pthread_barrier_wait(&start);
    zoo_other_work(12);
    g_req->body = NULL; /* BUG: drops the body between check and use */
    g_req->cancelled = 1;
    return NULL;
}

int main(void)
{
    pthread_t t1, t2;
    static char body[64] = "GET / HTTP/1.1";
    g_req = calloc(1, sizeof *g_req);
    g_req->body = body;
    pthread_barrier_init(&start, NULL, 2);
    pthread_create(&t1, NULL, parser, NULL);
    pthread_create(&t2, NULL, canceller, NULL);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    free(g_req);
    return 0;
}
