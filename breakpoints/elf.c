/*
 * ELF files: build-id, load layout and function symbols (.dynsym and .symtab). The only file
 * that includes libelf.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gelf.h>
#include <libelf.h>

#include "breakpoints/breakpoints.h"

struct bp_elf {
	int fd;
	Elf *elf;
	char *build_id;
	uint64_t first_vaddr;
	bool is_static;
	size_t nsyms;
};

static char *
read_build_id(Elf *elf)
{
	static const char hex[] = "0123456789abcdef";
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(elf, scn)) != NULL) {
		GElf_Shdr shdr;
		Elf_Data *data;
		GElf_Nhdr nhdr;
		size_t off = 0, name_off, desc_off;

		if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_NOTE)
			continue;
		data = elf_getdata(scn, NULL);
		while (data && (off = gelf_getnote(data, off, &nhdr, &name_off, &desc_off)) > 0) {
			const uint8_t *desc = (const uint8_t *)data->d_buf + desc_off;
			char *s;

			if (nhdr.n_type != NT_GNU_BUILD_ID || nhdr.n_namesz != 4 ||
			    memcmp((const char *)data->d_buf + name_off, "GNU", 4) != 0)
				continue;
			s = malloc(2 * nhdr.n_descsz + 1);
			if (!s)
				return NULL;
			for (size_t i = 0; i < nhdr.n_descsz; i++) {
				s[2 * i] = hex[desc[i] >> 4];
				s[2 * i + 1] = hex[desc[i] & 15];
			}
			s[2 * nhdr.n_descsz] = '\0';
			return s;
		}
	}
	return NULL;
}

static int
read_layout(struct bp_elf *e)
{
	size_t phnum;
	bool have_load = false;

	if (elf_getphdrnum(e->elf, &phnum) != 0)
		return -ENOEXEC;
	e->is_static = true;
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(e->elf, (int)i, &ph))
			return -ENOEXEC;
		if (ph.p_type == PT_INTERP || ph.p_type == PT_DYNAMIC)
			e->is_static = false;
		if (ph.p_type == PT_LOAD && (!have_load || ph.p_vaddr < e->first_vaddr)) {
			e->first_vaddr = ph.p_vaddr & ~(uint64_t)0xfff;
			have_load = true;
		}
	}
	return have_load ? 0 : -ENOEXEC;
}

static size_t
count_symbols(Elf *elf)
{
	Elf_Scn *scn = NULL;
	size_t n = 0;

	while ((scn = elf_nextscn(elf, scn)) != NULL) {
		GElf_Shdr shdr;

		if (gelf_getshdr(scn, &shdr) &&
		    (shdr.sh_type == SHT_SYMTAB || shdr.sh_type == SHT_DYNSYM) && shdr.sh_entsize)
			n += shdr.sh_size / shdr.sh_entsize;
	}
	return n;
}

int
bp_elf_open(const char *path, struct bp_elf **ret_elf)
{
	struct bp_elf *e;
	int r;

	if (elf_version(EV_CURRENT) == EV_NONE)
		return -ENOSYS;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->fd = -1;
	e->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (e->fd < 0) {
		r = -errno;
		goto fail;
	}
	e->elf = elf_begin(e->fd, ELF_C_READ_MMAP, NULL);
	if (!e->elf || elf_kind(e->elf) != ELF_K_ELF) {
		r = -ENOEXEC;
		goto fail;
	}
	r = read_layout(e);
	if (r < 0)
		goto fail;
	e->build_id = read_build_id(e->elf);
	e->nsyms = count_symbols(e->elf);
	*ret_elf = e;
	return 0;
fail:
	bp_elf_close(e);
	return r;
}

void
bp_elf_close(struct bp_elf *e)
{
	if (!e)
		return;
	if (e->elf)
		elf_end(e->elf);
	if (e->fd >= 0)
		close(e->fd);
	free(e->build_id);
	free(e);
}

const char *
bp_elf_build_id(const struct bp_elf *e)
{
	return e->build_id;
}

uint64_t
bp_elf_first_vaddr(const struct bp_elf *e)
{
	return e->first_vaddr;
}

bool
bp_elf_is_static(const struct bp_elf *e)
{
	return e->is_static;
}

size_t
bp_elf_symbol_count(const struct bp_elf *e)
{
	return e->nsyms;
}

int
bp_elf_foreach_func(const struct bp_elf *e,
		    int (*cb)(void *ctx, const char *name, uint64_t value, uint64_t size), void *ctx)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(e->elf, scn)) != NULL) {
		GElf_Shdr shdr;
		Elf_Data *data;

		if (!gelf_getshdr(scn, &shdr) ||
		    (shdr.sh_type != SHT_SYMTAB && shdr.sh_type != SHT_DYNSYM) || !shdr.sh_entsize)
			continue;
		data = elf_getdata(scn, NULL);
		if (!data)
			continue;
		for (size_t i = 0; i < shdr.sh_size / shdr.sh_entsize; i++) {
			GElf_Sym sym;
			const char *name;
			int r;

			if (!gelf_getsym(data, (int)i, &sym) || GELF_ST_TYPE(sym.st_info) != STT_FUNC ||
			    sym.st_shndx == SHN_UNDEF || sym.st_value == 0)
				continue;
			name = elf_strptr(e->elf, shdr.sh_link, sym.st_name);
			if (!name)
				continue;
			r = cb(ctx, name, sym.st_value, sym.st_size);
			if (r)
				return r;
		}
	}
	return 0;
}
