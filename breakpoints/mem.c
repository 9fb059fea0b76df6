/*
 * Target memory through /proc/PID/mem: one pread/pwrite per transfer, and writes go through
 * read-only text the way a debugger's do (the kernel copies the page for the target).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "breakpoints/breakpoints.h"

int
bp_mem_open(pid_t pid, int *ret_fd)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	*ret_fd = fd;
	return 0;
}

/* A short transfer means the range crosses into unmapped memory. */
static int
result(ssize_t n, size_t len)
{
	if (n < 0)
		return errno == ESRCH ? -ESRCH : errno == EIO ? -EFAULT : -errno;
	return (size_t)n == len ? 0 : -EFAULT;
}

int
bp_mem_read(int fd, uint64_t addr, void *buf, size_t len)
{
	return result(pread(fd, buf, len, (off_t)addr), len);
}

int
bp_mem_write(int fd, uint64_t addr, const void *buf, size_t len)
{
	return result(pwrite(fd, buf, len, (off_t)addr), len);
}
