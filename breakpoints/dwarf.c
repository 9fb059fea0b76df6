/*
 * Source lines and function names of a live process's code, through libdw's Dwfl over
 * /proc/PID/maps. The only file that includes libdw.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dwarf.h>
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

/*
 * When @addr is in code inlined into a function (a pthread wrapper of libstdc++'s, a small
 * helper), the line table gives the innermost source line (gthr-default.h:749): the place in the
 * function itself is the call line of the outermost inlined scope (src->call_file, call_line).
 * The function's own name comes from its DWARF entry too (unmangled, "worker" rather than
 * "_ZL6workerv"). Leaves @src as it is when DWARF says nothing more.
 */
static void
outer_position(Dwfl_Module *mod, uint64_t addr, struct bp_source *src)
{
	Dwarf_Addr bias;
	Dwarf_Die *cu = dwfl_module_addrdie(mod, addr, &bias), *scopes = NULL;
	int n = cu ? dwarf_getscopes(cu, addr - bias, &scopes) : 0;
	Dwarf_Die outer = {0}, *outer_inline = NULL;
	Dwarf_Attribute attr;
	Dwarf_Word line, idx;

	/*
	 * Past an inlined scope, dwarf_getscopes() goes on in the inlined function's own tree;
	 * the caller's scopes are those dwarf_getscopes_die() gives for the inlined DIE. So
	 * climb one inlined scope at a time, up to the function (bounded: inlining is shallow).
	 */
	for (int depth = 0; n > 0 && depth < 64; depth++) {
		int i, tag = 0;

		for (i = depth ? 1 : 0; i < n; i++) {
			tag = dwarf_tag(&scopes[i]);
			if (tag == DW_TAG_inlined_subroutine || tag == DW_TAG_subprogram)
				break;
		}
		if (i == n)
			break;
		if (tag == DW_TAG_subprogram) {
			const char *name = dwarf_formstring(
			    dwarf_attr_integrate(&scopes[i], DW_AT_name, &attr));
			if (name)
				src->func = name;
			break;
		}
		outer = scopes[i];
		outer_inline = &outer;
		free(scopes);
		scopes = NULL;
		n = dwarf_getscopes_die(&outer, &scopes);
	}
	if (outer_inline &&
	    dwarf_formudata(dwarf_attr(outer_inline, DW_AT_call_line, &attr), &line) == 0 &&
	    line > 0 &&
	    dwarf_formudata(dwarf_attr(outer_inline, DW_AT_call_file, &attr), &idx) == 0) {
		Dwarf_Files *files;
		size_t nfiles;
		const char *f = NULL;

		if (dwarf_getsrcfiles(cu, &files, &nfiles) == 0 && idx < nfiles)
			f = dwarf_filesrc(files, idx, NULL, NULL);
		if (f) {
			src->call_file = base_name(f);
			src->call_line = (int)line;
		}
	}
	free(scopes);
}

int
bp_symbolizer_frame(struct bp_symbolizer *s, uint64_t addr, bool lines,
		    struct bp_source *ret_src)
{
	Dwfl_Module *mod = dwfl_addrmodule(s->dwfl, addr);
	struct bp_source src = {0};
	const char *file = NULL;

	if (!mod)
		return -ENOENT;
	Dwfl_Line *l = lines ? dwfl_module_getsrc(mod, addr) : NULL;
	if (l)
		file = dwfl_lineinfo(l, NULL, &src.line, NULL, NULL, NULL);
	src.file = file ? base_name(file) : NULL;
	src.func = dwfl_module_addrname(mod, addr);
	if (l)
		outer_position(mod, addr, &src);
	if (!src.file && !src.func)
		return -ENOENT;
	*ret_src = src;
	return 0;
}

int
bp_symbolizer_lookup(struct bp_symbolizer *s, uint64_t addr, char *buf, size_t size)
{
	struct bp_source src;
	int r = bp_symbolizer_frame(s, addr, true, &src);

	if (r < 0)
		return r;
	if (src.file && src.func)
		return snprintf(buf, size, "%s:%d %s", src.file, src.line, src.func);
	if (src.file)
		return snprintf(buf, size, "%s:%d", src.file, src.line);
	return snprintf(buf, size, "%s", src.func);
}

/* ---- Line tables of an ELF file on disk, for sharing points (points.h) ---- */

/*
 * Appended here, not at the top, so that this section stays separate from the symbolizer
 * above: everything below serves bp_dwarf_foreach_unit() only.
 */
#include <fcntl.h>
#include <unistd.h>

#include <dwarf.h>

#include "breakpoints/points.h"

/* Executable address ranges of the main file, in Dwfl addresses. */
struct exec_ranges {
	size_t n, cap;
	struct {
		uint64_t lo, hi;
	} *r;
};

static int
exec_ranges_add(struct exec_ranges *x, uint64_t lo, uint64_t hi)
{
	if (x->n == x->cap) {
		size_t cap = x->cap ? 2 * x->cap : 8;
		void *r = reallocarray(x->r, cap, sizeof(*x->r));

		if (!r)
			return -ENOMEM;
		x->r = r;
		x->cap = cap;
	}
	x->r[x->n].lo = lo;
	x->r[x->n].hi = hi;
	x->n++;
	return 0;
}

/*
 * The SHF_EXECINSTR sections of the main file, or its PF_X segments when it has no section
 * headers. Why: a function the linker discarded (--gc-sections, a COMDAT copy of another size)
 * keeps its line rows, relocated to a tombstone (0 for ld.bfd, -1 for lld); those addresses are
 * not code and must not become breakpoints. The Elf handle is libdwfl's own (libdw.h declares
 * gelf), so this stays within the libdw boundary.
 */
static int
exec_ranges_read(Dwfl_Module *mod, struct exec_ranges *x)
{
	GElf_Addr bias;
	Elf *elf = dwfl_module_getelf(mod, &bias);
	Elf_Scn *scn = NULL;
	size_t phnum;
	int r;

	if (!elf)
		return -ENOEXEC;
	while ((scn = elf_nextscn(elf, scn)) != NULL) {
		GElf_Shdr sh;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type == SHT_NOBITS || sh.sh_size == 0 ||
		    (sh.sh_flags & (SHF_ALLOC | SHF_EXECINSTR)) != (SHF_ALLOC | SHF_EXECINSTR))
			continue;
		r = exec_ranges_add(x, sh.sh_addr + bias, sh.sh_addr + bias + sh.sh_size);
		if (r < 0)
			return r;
	}
	if (x->n > 0 || elf_getphdrnum(elf, &phnum) != 0)
		return 0;
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_LOAD || !(ph.p_flags & PF_X))
			continue;
		r = exec_ranges_add(x, ph.p_vaddr + bias, ph.p_vaddr + bias + ph.p_memsz);
		if (r < 0)
			return r;
	}
	return 0;
}

static bool
exec_ranges_contain(const struct exec_ranges *x, uint64_t addr)
{
	for (size_t i = 0; i < x->n; i++)
		if (addr >= x->r[i].lo && addr < x->r[i].hi)
			return true;
	return false;
}

/* Reports the file at @path alone, at its own vaddrs (base 0, p_vaddr added). */
static int
report_file(Dwfl *dwfl, const char *path, Dwfl_Module **ret_mod)
{
	Dwfl_Module *mod;
	int fd;

	/* Opened here so that a missing or unreadable file is its errno, not a libdwfl code. */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	dwfl_report_begin(dwfl);
	mod = dwfl_report_elf(dwfl, path, path, fd, 0, true);
	if (!mod)
		close(fd); /* consumed only on success */
	/* libdwfl's error codes are private; what fails here is the ELF itself */
	if (dwfl_report_end(dwfl, NULL, NULL) != 0 || !mod)
		return -ENOEXEC;
	*ret_mod = mod;
	return 0;
}

int
bp_dwarf_foreach_unit(const char *path, int (*cb)(void *ctx, const struct bp_dwarf_unit *unit),
		      void *ctx)
{
	static const Dwfl_Callbacks callbacks = {
		.find_elf = dwfl_build_id_find_elf,
		.find_debuginfo = dwfl_standard_find_debuginfo,
		.section_address = dwfl_offline_section_address,
	};
	struct exec_ranges exec = {0};
	struct bp_dwarf_row *rows = NULL;
	const char **names = NULL;
	size_t rows_cap = 0, names_cap = 0;
	Dwarf_Die *cu = NULL;
	Dwarf_Addr dwbias, cubias;
	GElf_Addr mainbias;
	Dwfl_Module *mod = NULL;
	bool any = false;
	Dwfl *dwfl;
	int r;

	dwfl = dwfl_begin(&callbacks);
	if (!dwfl)
		return -ENOMEM;
	r = report_file(dwfl, path, &mod);
	if (r < 0)
		goto leave;
	if (!dwfl_module_getelf(mod, &mainbias)) {
		r = -ENOEXEC;
		goto leave;
	}
	if (!dwfl_module_getdwarf(mod, &dwbias)) {
		r = -ENODATA;
		goto leave;
	}
	r = exec_ranges_read(mod, &exec);
	if (r < 0)
		goto leave;

	while ((cu = dwfl_module_nextcu(mod, cu, &cubias)) != NULL) {
		struct bp_dwarf_unit unit;
		Dwarf_Attribute attr;
		Dwarf_Lines *lines;
		Dwarf_Files *files;
		size_t nlines, nfiles;

		if (dwarf_getsrclines(cu, &lines, &nlines) != 0 || nlines == 0)
			continue; /* a unit without line info (or a corrupt one) has no points */
		if (dwarf_getsrcfiles(cu, &files, &nfiles) != 0) {
			files = NULL;
			nfiles = 0;
		}
		if (nlines > rows_cap) {
			void *p = reallocarray(rows, nlines, sizeof(*rows));

			if (!p) {
				r = -ENOMEM;
				goto leave;
			}
			rows = p;
			rows_cap = nlines;
		}
		if (nfiles > names_cap) {
			void *p = reallocarray(names, nfiles, sizeof(*names));

			if (!p) {
				r = -ENOMEM;
				goto leave;
			}
			names = p;
			names_cap = nfiles;
		}
		for (size_t i = 0; i < nfiles; i++)
			names[i] = dwarf_filesrc(files, i, NULL, NULL);
		for (size_t i = 0; i < nlines; i++) {
			Dwarf_Line *l = dwarf_onesrcline(lines, i);
			struct bp_dwarf_row *row = &rows[i];
			Dwarf_Files *lfiles;
			Dwarf_Addr addr = 0;
			bool stmt = false, end = false;
			size_t idx;

			memset(row, 0, sizeof(*row));
			row->file = UINT32_MAX;
			if (!l || dwarf_lineaddr(l, &addr) != 0) {
				row->barrier = true;
				continue;
			}
			dwarf_lineno(l, &row->line);
			dwarf_linebeginstatement(l, &stmt);
			dwarf_lineendsequence(l, &end);
			if (dwarf_line_file(l, &lfiles, &idx) == 0 && lfiles == files &&
			    idx < nfiles)
				row->file = (uint32_t)idx;
			addr += cubias;
			row->stmt = stmt;
			row->barrier = end || !exec_ranges_contain(&exec, addr);
			row->addr = addr - mainbias;
		}
		any = true;
		unit = (struct bp_dwarf_unit){
			.comp_dir = dwarf_formstring(dwarf_attr(cu, DW_AT_comp_dir, &attr)),
			.files = names,
			.nfiles = nfiles,
			.rows = rows,
			.nrows = nlines,
		};
		r = cb(ctx, &unit);
		if (r != 0)
			goto leave;
	}
	r = any ? 0 : -ENODATA;
leave:
	free(rows);
	free(names);
	free(exec.r);
	dwfl_end(dwfl);
	return r;
}
