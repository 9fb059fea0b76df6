/* aba_stack.c: ABA on a lock-free stack (Treiber stack, compare-and-swap on the top).
 *
 * The scanner reads top = A and A->next = B, reserves budget for A, then swings the top from
 * A to B with a CAS. If meanwhile the mover pops A and B and pushes A back, the top is A
 * again: the scanner's CAS succeeds and makes B, which the mover owns and retires to the free
 * pool, the top of the stack. The final check finds a retired node on the stack.
 *
 *   scanner: old = top; next = old->next;  ...reserve...;  CAS(&top, old, next);
 *   mover:             a = pop(); b = pop(); push(a); retire(b);
 *
 * Exit: 0 when the bug did not show, SIGABRT (assert: retired node on the stack) when it did.
 * Fix: tagged pointers (version counter in the CAS), hazard pointers, or a lock. */
#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "zoo.h"

#define NNODES 16

enum state { ON_STACK = 1, TAKEN, RETIRED };

struct node {
    struct node *next;
    int id;
    int state;
};

static struct node nodes[NNODES];
static struct node *top; /* accessed with __atomic builtins */
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER; /* the free pool and the budget */
static struct node *pool;
static long budget;
static int moved;
static pthread_barrier_t start;

static void push(struct node *n)
{
    struct node *old = __atomic_load_n(&top, __ATOMIC_ACQUIRE);
    do {
        n->next = old;
        n->state = ON_STACK;
    } while (!__atomic_compare_exchange_n(&top, &old, n, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
}

static struct node *pop(void)
{
    struct node *old = __atomic_load_n(&top, __ATOMIC_ACQUIRE);
    while (old && !__atomic_compare_exchange_n(&top, &old, old->next, 0, __ATOMIC_ACQ_REL,
                                               __ATOMIC_ACQUIRE))
        ;
    if (old) {
        assert(old->state == ON_STACK); /* fails when a retired node was on the stack */
        old->state = TAKEN;
    }
    return old;
}

static void retire(struct node *n)
{
    pthread_mutex_lock(&pool_mu);
    n->state = RETIRED;
    n->next = pool;
    pool = n;
    pthread_mutex_unlock(&pool_mu);
}

/* The slow pop: reads the top and its successor, reserves budget, then swings the top. */
static struct node *scan_pop(void)
{
    struct node *old = __atomic_load_n(&top, __ATOMIC_ACQUIRE); /* BUG: read A ... */
    if (!old)
        return NULL;
    struct node *next = old->next; /* ... and B */
    pthread_mutex_lock(&pool_mu);
    budget -= old->id;
    pthread_mutex_unlock(&pool_mu);
    usleep(100); /* reserve budget: the window */
    /* BUG: the CAS succeeds when A is back on top although B was retired */
    if (!__atomic_compare_exchange_n(&top, &old, next, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return NULL;
    assert(old->state == ON_STACK);
    old->state = TAKEN;
    return old;
}

static void *scanner(void *arg)
{
    pthread_barrier_wait(&start);
    while (!__atomic_load_n(&moved, __ATOMIC_ACQUIRE)) {
        struct node *n = scan_pop();
        if (n)
            push(n); /* scanned, back on the stack */
        usleep(400); /* next scan */
    }
    return NULL;
}

static void *mover(void *arg)
{
    pthread_barrier_wait(&start);
    zoo_other_work(12);
    struct node *a = pop();
    struct node *b = pop();
    if (a)
        push(a); /* BUG: A is back on top: ABA ... */
    if (b)
        retire(b); /* ... and B goes back to the pool */
    __atomic_store_n(&moved, 1, __ATOMIC_RELEASE);
    return NULL;
}

int main(void)
{
    pthread_t t1, t2;
    for (int i = NNODES - 1; i >= 0; i--) {
        nodes[i].id = i;
        push(&nodes[i]);
    }
    pthread_barrier_init(&start, NULL, 2);
    pthread_create(&t1, NULL, scanner, NULL);
    pthread_create(&t2, NULL, mover, NULL);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    int n = 0;
    while (pop() != NULL) /* asserts that every node on the stack is live */
        n++;
    return n == NNODES - 1 ? 0 : 1;
}
