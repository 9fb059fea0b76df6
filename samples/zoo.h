/* zoo.h: timing helpers shared by the samples. No bug lives here.
 *
 * A sample must fail because of an unlucky interleaving, never because of a random number.
 * The only source of variation is real scheduling: timer slack, wake-up latency, preemption
 * by other processes, CPU frequency. zoo_other_work() stands for "unrelated work" (parsing,
 * I/O, ...) made of CPU bursts and short sleeps; its length varies from run to run by a few
 * hundred microseconds on a typical machine, which places the one-shot action of one thread
 * at an unpredictable point of another thread's periodic loop. The failure rate of a sample
 * is then roughly (length of its race window) / (period of the loop), a ratio that a few
 * microseconds of tracer overhead per pthread call changes little. */
#ifndef ZOO_H
#define ZOO_H

#include <sys/prctl.h>
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

/* "Unrelated work" of `steps` steps of roughly 0.6 ms each (half CPU, half sleep). Its length
 * must vary from run to run by more than the victim's period (0.5-0.7 ms) for the failure rate
 * to be the window/period ratio rather than an accident of alignment; 12 steps vary by about
 * 0.5 ms here. */
static inline void zoo_other_work(int steps)
{
    for (int i = 0; i < 2 * steps; i++) {
        zoo_crunch(100000);
        usleep(150);
    }
}

#endif
