/* zoo.h: timing helpers shared by the samples. No bug lives here.
 *
 * A sample must fail because of an unlucky interleaving, never because of a random number.
 * The only source of variation is real timing: when the run started, timer slack, wake-up
 * latency, preemption by other processes, CPU frequency. zoo_other_work() stands for
 * "unrelated work" (parsing, I/O, ...) made of CPU bursts and short sleeps, and ends at a
 * timer tick; the one-shot action of one thread that follows it then falls at an unpredictable
 * point of another thread's periodic loop. The failure rate of a sample is then roughly
 * (length of its race window) / (period of the loop), a ratio that a few microseconds of
 * tracer overhead per pthread call changes little. */
#ifndef ZOO_H
#define ZOO_H

#include <errno.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

/* Timer slack 1 ns for the process (threads inherit it from main): with the default 50 us,
 * the kernel wakes sleepers whose timers fall within 50 us of each other together, which
 * couples the threads' timing and makes the rates swing with tracer overhead. Runs before
 * main. */
__attribute__((constructor)) static void zoo_no_timer_slack(void)
{
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
}

/* Deterministic CPU work: n rounds of FNV-1a. */
static inline unsigned zoo_crunch(unsigned n)
{
    volatile unsigned h = 2166136261u;
    for (unsigned i = 0; i < n; i++)
        h = (h ^ i) * 16777619u;
    return h;
}

/* Sleep until the next multiple of `us` microseconds of CLOCK_MONOTONIC: a timer tick. */
static inline void zoo_tick(long us)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    long long ns = (long long)t.tv_sec * 1000000000 + t.tv_nsec;
    ns += us * 1000 - ns % (us * 1000);
    t.tv_sec = ns / 1000000000;
    t.tv_nsec = ns % 1000000000;
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR)
        ;
}

/* "Unrelated work" of `steps` steps of roughly 0.6 ms each (half CPU, half sleep), then a wait
 * for the next 2 ms tick (the result is picked up by a timer). The tick is what spreads the
 * action that follows over the other thread's loop (period 0.5-0.9 ms): the run's start is at
 * a uniform point between two ticks, and while this thread waits for its tick the other one
 * runs its loop freely. The work's own variation (about 0.5 ms here for 12 steps) is not
 * enough: when the two threads share a CPU (a tracer's threads often end up so), the loop
 * thread runs only while this one sleeps, its iterations begin at this one's sleeps, and the
 * action came at one point of the loop (refcount under aviso-trace: 74 of 99 runs within
 * the same 10 us, a rate of 2% or 80% depending on a few microseconds of window). */
static inline void zoo_other_work(int steps)
{
    for (int i = 0; i < 2 * steps; i++) {
        zoo_crunch(100000);
        usleep(150);
    }
    zoo_tick(2000);
}

#endif
