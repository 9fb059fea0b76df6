/*
 * forkexec: fork and exec inside a multithreaded traced program (forkexec.h has the shape and
 * the counts). Without -f the child must run untouched by the parent's breakpoints; with -f its
 * events appear under its own pid.
 */
#include <pthread.h>
#include <sys/wait.h>

#include "forkexec.h"
#include "progutil.h"

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t child_m = PTHREAD_MUTEX_INITIALIZER; /* only the child touches it */
static long sum;

static void *
locker(void *arg)
{
	long n = (long)arg;

	for (long i = 0; i < n; i++) {
		PROG_EXPECT(pthread_mutex_lock(&m), 0);
		sum++;
		PROG_EXPECT(pthread_mutex_unlock(&m), 0);
	}
	return NULL;
}

static int
exec_child(void)
{
	pthread_t t;

	PROG_EXPECT(pthread_create(&t, NULL, locker, (void *)(long)FE_EXEC_LOCKS), 0);
	PROG_EXPECT(pthread_join(t, NULL), 0);
	if (sum != FE_EXEC_LOCKS)
		prog_die("forkexec exec-child: sum %ld", sum);
	return 0;
}

int
main(int argc, char **argv)
{
	pthread_t th[FE_THREADS];
	pid_t child, w;
	int status;

	if (argc == 2 && strcmp(argv[1], "exec-child") == 0)
		return exec_child();

	for (int i = 0; i < FE_THREADS; i++)
		PROG_EXPECT(pthread_create(&th[i], NULL, locker, (void *)(long)FE_THREAD_LOCKS), 0);

	/* Fork while the threads lock: the child inherits the breakpoints' memory. */
	child = fork();
	if (child < 0)
		prog_die("fork: %s", strerror(errno));
	if (child == 0) {
		long csum = 0;

		for (int i = 0; i < FE_CHILD_LOCKS; i++) {
			PROG_EXPECT(pthread_mutex_lock(&child_m), 0);
			csum++;
			PROG_EXPECT(pthread_mutex_unlock(&child_m), 0);
		}
		if (csum != FE_CHILD_LOCKS)
			_exit(3);
		execl("/proc/self/exe", argv[0], "exec-child", (char *)NULL);
		_exit(4);
	}

	do
		w = waitpid(child, &status, 0);
	while (w < 0 && errno == EINTR);
	if (w != child)
		prog_die("waitpid: %s", strerror(errno));
	for (int i = 0; i < FE_THREADS; i++)
		PROG_EXPECT(pthread_join(th[i], NULL), 0);
	for (int i = 0; i < FE_PARENT_LOCKS; i++) {
		PROG_EXPECT(pthread_mutex_lock(&m), 0);
		sum++;
		PROG_EXPECT(pthread_mutex_unlock(&m), 0);
	}
	if (sum != FE_THREADS * FE_THREAD_LOCKS + FE_PARENT_LOCKS)
		prog_die("forkexec: sum %ld", sum);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		printf("forkexec: child failed, status 0x%x\n", status);
		return 1;
	}
	printf("forkexec: ok parent=%d child=%d\n", (int)getpid(), (int)child);
	return 0;
}
