/*
 * Source lines and function names of a live process's code, through libdw's Dwfl over
 * /proc/PID/maps. The only file that includes libdw.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <elfutils/libdwfl.h>

#include "breakpoints/breakpoints.h"

struct bp_symbolizer {
	pid_t pid;
	Dwfl *dwfl;
};

static int
report(struct bp_symbolizer *s)
{
	int r;

	dwfl_report_begin(s->dwfl);
	r = dwfl_linux_proc_report(s->dwfl, s->pid);
	if (dwfl_report_end(s->dwfl, NULL, NULL) != 0 && r == 0)
		r = -EIO;
	return r > 0 ? -r : r;
}

int
bp_symbolizer_create(pid_t pid, struct bp_symbolizer **ret_sym)
{
	static const Dwfl_Callbacks callbacks = {
		.find_elf = dwfl_linux_proc_find_elf,
		.find_debuginfo = dwfl_standard_find_debuginfo,
	};
	struct bp_symbolizer *s;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->pid = pid;
	s->dwfl = dwfl_begin(&callbacks);
	if (!s->dwfl) {
		free(s);
		return -ENOMEM;
	}
	r = report(s);
	if (r < 0) {
		bp_symbolizer_destroy(s);
		return r;
	}
	*ret_sym = s;
	return 0;
}

void
bp_symbolizer_destroy(struct bp_symbolizer *s)
{
	if (!s)
		return;
	dwfl_end(s->dwfl);
	free(s);
}

int
bp_symbolizer_refresh(struct bp_symbolizer *s)
{
	return report(s);
}

static const char *
base_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

int
bp_symbolizer_lookup(struct bp_symbolizer *s, uint64_t addr, char *buf, size_t size)
{
	Dwfl_Module *mod = dwfl_addrmodule(s->dwfl, addr);
	const char *func = NULL, *file = NULL;
	int line = 0, n;

	if (!mod)
		return -ENOENT;
	Dwfl_Line *l = dwfl_module_getsrc(mod, addr);
	if (l)
		file = dwfl_lineinfo(l, NULL, &line, NULL, NULL, NULL);
	func = dwfl_module_addrname(mod, addr);
	if (file && func)
		n = snprintf(buf, size, "%s:%d %s", base_name(file), line, func);
	else if (file)
		n = snprintf(buf, size, "%s:%d", base_name(file), line);
	else if (func)
		n = snprintf(buf, size, "%s", func);
	else
		return -ENOENT;
	return n;
}
