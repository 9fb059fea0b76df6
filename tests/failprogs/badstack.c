/*
 * A crash with nothing readable to unwind: a thread points its stack pointer at an unmapped
 * page and pushes (the line marked PUSH). The tracer can read neither the stack nor anything
 * from it, and must still report the SIGSEGV and let the program die of it.
 */
#include <pthread.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void *
lost(void *arg)
{
	pthread_mutex_lock(&mu);
	pthread_mutex_unlock(&mu);
	__asm__ volatile("mov $0x10, %%rsp\n\tpush %%rax" ::: "memory"); /* PUSH */
	return arg;
}

int
main(void)
{
	pthread_t t;

	pthread_create(&t, NULL, lost, NULL);
	pthread_join(t, NULL);
	return 0;
}
