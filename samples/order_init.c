/* order_init.c: order violation, use before initialization.
 *
 * main starts the client thread, brings the server up, announces it, and only then publishes
 * the configuration. The client polls until the server is announced and then reads the
 * configuration, assuming it was initialized before the announcement: when its poll falls
 * between main's announcement and main's initialization, it reads a NULL g_cfg.
 *
 *   main:    lock; up = 1; unlock;  ...parse config...;  lock; g_cfg = cfg; unlock;
 *   client:  lock; u = up; unlock;  if (u) { lock; port = g_cfg->port; unlock; }
 *
 * Exit: 0 when the bug did not show, SIGSEGV when it did.
 * Fix: publish g_cfg before announcing the server (or in the same critical section). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "zoo.h"

struct config {
    int port;
    int retries;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int server_up;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static int attempts;
static struct config *g_cfg; /* initialized by main after announcing the server */
static pthread_barrier_t start;

static void *client(void *arg)
{
    pthread_barrier_wait(&start);
    for (;;) {
        pthread_mutex_lock(&mu);
        int up = server_up;
        pthread_mutex_unlock(&mu);
        if (up) {
            pthread_mutex_lock(&mu);
            int port = g_cfg->port; /* BUG: use, assumes g_cfg initialized before server_up */
            pthread_mutex_unlock(&mu);
            return (void *)(long)port;
        }
        pthread_mutex_lock(&log_mu);
        attempts++; /* log the failed attempt */
        pthread_mutex_unlock(&log_mu);
        usleep(700); /* poll again */
    }
}

int main(void)
{
    pthread_t t;
    pthread_barrier_init(&start, NULL, 2);
    pthread_create(&t, NULL, client, NULL);
    pthread_barrier_wait(&start);

    zoo_other_work(12); /* bind, listen */
    pthread_mutex_lock(&mu);
    server_up = 1; /* BUG: announced before the configuration exists */
    pthread_mutex_unlock(&mu);

    struct config *cfg = malloc(sizeof *cfg);
    cfg->port = 22221;
    cfg->retries = 3;
    usleep(150); /* parse the rest of the configuration: the window */
    pthread_mutex_lock(&mu);
    g_cfg = cfg; /* BUG: initialization, after the use it should precede */
    pthread_mutex_unlock(&mu);

    void *port;
    pthread_join(t, &port);
    return (long)port == 22221 ? 0 : 1;
}
