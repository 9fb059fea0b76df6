/*
 * Sharing points (AVISO.md section 1): an AVISOPOINTS file lists code points as "file line"
 * pairs, whitespace separated, one or more per line (the original Aviso format). This header
 * parses that text and resolves each point, through the DWARF line tables of one ELF module,
 * to every address that begins a statement on that line: every inlined copy, every function
 * instance, every duplicated loop body.
 *
 * points.c is pure (parsing, file-name matching, statement runs); the libdw part is the line
 * table walk at the end of dwarf.c (the one libdw boundary), declared at the end of this header.
 *
 * Conventions (STYLE.md): 0 or a count on success, -errno on failure; ret_* out-parameters are
 * untouched on failure (except *ret_err, written only on -EINVAL); destructors accept NULL.
 * Nothing here logs.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Parsing (points.c) ---- */

/* One "file line" entry. */
struct bp_point {
	char *file;    /* as written: "atom.c", "src/atom.c" or an absolute path */
	int line;      /* >= 1 */
	size_t offset; /* byte offset of the entry (its file name) in the parsed text */
	int text_line; /* 1-based line of the text it was on, for messages */
};

/* Where and why bp_points_parse() refused its input. */
struct bp_points_error {
	size_t offset;	    /* byte offset of the offending token in the text */
	int line;	    /* 1-based line of that token */
	int column;	    /* 1-based column of that token, in bytes */
	const char *reason; /* static English text: "line number missing", ... */
};

/*
 * Parses the AVISOPOINTS text @text (NUL-terminated): "file line" pairs separated by any
 * whitespace (spaces, tabs, CR, LF), any number per text line. A '#' where a file name is
 * expected starts a comment that runs to the end of the text line (an extension: the original
 * format has none; aviso-prof may annotate counts). On success *ret_points gets a malloc'ed
 * array of *ret_n points in text order (NULL and 0 for a text without points), which the caller
 * frees with bp_points_free(), and the number of points is returned.
 * -EINVAL for a malformed entry (a file without a line number; a line number that is not a
 * decimal integer in 1..INT_MAX), described in *ret_err when @ret_err is not NULL. -ENOMEM,
 * -EOVERFLOW (more than INT_MAX points).
 */
int bp_points_parse(const char *text, struct bp_point **ret_points, size_t *ret_n,
		    struct bp_points_error *ret_err);
void bp_points_free(struct bp_point *points, size_t n);

/*
 * True when @pattern names the source file @name: equal to it, or to a trailing sequence of its
 * path components ("atom.c" and "x/atom.c" match "/src/x/atom.c", "om.c" does not), both taken
 * lexically normalized ("//", "." and "dir/.." removed: DWARF often records
 * "/build/../src/atom.c"). An absolute @pattern must equal the whole name.
 */
bool bp_points_file_matches(const char *pattern, const char *name);

/* ---- Resolution (points.c over dwarf.c) ---- */

/* The addresses of one point in one module. */
struct bp_point_addrs {
	int status;	   /* the number of offsets (>= 1), or -ENOENT: no code for that point */
	bool file_found;   /* some compilation of the module has a file matching the point's */
	size_t n;	   /* number of offsets */
	uint64_t *offsets; /* sorted, distinct; offsets from the module's load base */
	/* Per offset: where its run of rows ends (the next row's address, from the load base),
	 * that is the end of the point's statement there; 0 when unknown. */
	uint64_t *ends;
};

/*
 * Resolves the @n points @points in the ELF file at @path, in one pass over its line tables
 * (debug info from the file itself, or from its separate debug file found by build-id or
 * debuglink under /usr/lib/debug or beside the file). For each point, the addresses where a
 * run of line-table rows for that file and line begins a statement (is_stmt), across every
 * compilation unit, so every inlined copy and every duplicated instance is there. A run is a
 * maximal stretch of consecutive rows (by address, within one sequence) for the point; it
 * gives its first is_stmt row. A line none of whose rows is_stmt (it happens at -O2) gets the
 * first row of each run instead, so a line seen in an instruction always resolves back. Rows
 * outside executable sections (discarded functions) are ignored.
 *
 * Offsets are from the module's load base (ELF vaddr minus the first PT_LOAD's page-aligned
 * p_vaddr, bp_elf_first_vaddr()): the runtime address is struct bp_module.base + offset.
 *
 * On success *ret_addrs gets a malloc'ed array of @n results, in the order of @points, freed
 * with bp_point_addrs_free(), and the number of points that resolved (status >= 1) is returned:
 * an unresolved point (status -ENOENT) is not an error here, the caller names it. A point whose
 * line has no code (a comment, a blank line, code the compiler removed) is unresolved.
 * -ENODATA when the module has no DWARF line table at all, -ENOENT or -EACCES when @path cannot
 * be opened, -ENOEXEC when it is not ELF, -ENOMEM, -EOVERFLOW (more than INT_MAX points).
 * Cost: one read of every line table, whatever @n (about 0.2 s for glibc's 1.9 MB libc.so.6
 * with its 4 MB debug file); resolving points one at a time pays that for each.
 */
int bp_points_resolve_all(const char *path, const struct bp_point *points, size_t n,
			  struct bp_point_addrs **ret_addrs);
void bp_point_addrs_free(struct bp_point_addrs *addrs, size_t n);

/*
 * One point: @file and @line as in struct bp_point. Returns the number of offsets (>= 1) and
 * sets *ret_offsets (malloc'ed, sorted, distinct; the caller frees it) and *ret_n; -ENOENT when
 * the file or the line has no code in that module (or @path does not exist), -EINVAL for a
 * line below 1 or an empty file name, -ENODATA, -errno as bp_points_resolve_all(). For several points, bp_points_resolve_all() reads the line
 * tables once.
 */
int bp_points_resolve(const char *path, const char *file, int line, uint64_t **ret_offsets,
		      size_t *ret_n);

/* ---- Line tables (dwarf.c, the one libdw boundary; used by points.c) ---- */

/* One row of a line table, in the order libdw gives (sorted by address). */
struct bp_dwarf_row {
	uint64_t addr; /* ELF vaddr in the file at @path */
	uint32_t file; /* index into the unit's file names; UINT32_MAX when unknown */
	int line;      /* 0 when the row has no line */
	bool stmt;     /* begins a statement (is_stmt) */
	bool barrier;  /* not code: an end of sequence, or an address outside every
			* executable section (a discarded function's tombstone, at 0):
			* ends any run of rows */
};

/* One compilation unit's line table. Valid during the callback only. */
struct bp_dwarf_unit {
	const char *comp_dir; /* DW_AT_comp_dir, or NULL */
	/* File names as libdw composes them (dir + name): relative to comp_dir when the
	 * compiler recorded a relative directory (meson's "../src"). An entry may be NULL. */
	const char *const *files;
	size_t nfiles;
	const struct bp_dwarf_row *rows;
	size_t nrows;
};

/*
 * Calls @cb for every compilation unit of the ELF at @path that has a line table (debug info
 * from the file or its separate debug file, as libdwfl's standard search finds it). Stops and
 * returns what @cb returned when non-zero. Returns 0, -ENODATA when no unit has a line table,
 * -ENOENT, -EACCES (cannot open @path), -ENOEXEC (not ELF), -ENOMEM.
 */
int bp_dwarf_foreach_unit(const char *path, int (*cb)(void *ctx, const struct bp_dwarf_unit *unit),
			  void *ctx);
