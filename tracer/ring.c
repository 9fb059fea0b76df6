/*
 * The event ring: events recorded with no stop (DESIGN.md, "Where the time goes").
 *
 * The tracer creates a memfd at start and maps it shared; each traced process image maps the
 * same memfd (an injected openat of /proc/TRACER/fd/N, mmap, close: the target keeps no fd, only
 * the mapping). A ring pad (breakpoints.h) calls the ring routine (breakpoints/ring.S), which
 * takes the next sequence number with lock xadd, writes the event into its slot (return
 * address, first argument, tid, rdtsc, the registers an unwinder starts from, a copy of the top
 * of the stack when more than one frame is wanted) and commits it with a last store. Only a
 * full ring, trap-all, a return address in the decision table (a B: it counts itself in the
 * header's acts first), or such a B not handled yet (acts != acts_seen) makes it stop.
 *
 * The tracer drains the ring at every stop it handles (before any event of its own, so a
 * thread's events keep their order), at the 500 ms tick, and at the end. A slot not committed
 * yet is a thread in the middle of the routine: it is skipped and taken at a later drain, after
 * the committed ones that followed it. That is a valid order: the thread has not finished its
 * call's first instruction, so nothing another thread did since can depend on it. A thread
 * stopped in the routine (a signal, a detach) is stepped out of it before anything else is done
 * with it (thread_leave_scratch), so its slot is committed first. Each drained slot becomes the
 * same event as a stop would have made (record.c), with the sequence number given at the drain,
 * a timestamp from its rdtsc (calibrated against CLOCK_MONOTONIC), and a site unwound from the
 * kept stack copy, never from the live stack.
 *
 * Limits, known and accepted for now:
 *  - the tid is glibc 2.36's struct pthread tid (%fs:0x2d0, as stall.c reads it); a vfork
 *    child shares its parent's TLS, so its events (before its exec) would be its parent's;
 *  - a writer that dies between its lock xadd and its commit (another thread's exec) leaves a
 *    slot that is never committed; after an exec that left one process on the ring such slots
 *    are dropped (ring_forget_unfinished()), but with several processes (-f) one would hold
 *    the ring full;
 *  - a thread that receives a signal while it waits for room behind such an unfinished slot of
 *    a stopped thread is delivered the signal inside the routine (its handler returns there):
 *    a detach while that handler runs would unmap the code it returns to;
 *  - events before the first millisecond of the run are stamped at their drain (the rdtsc
 *    rate is not known yet).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <unistd.h>

#include "breakpoints/unwind.h"
#include "tracer/internal.h"

/*
 * Stack bytes kept per event when more than one frame is wanted: as many as a stop copies
 * (loop.c). Measured (AVISO_RING_COPY, sites compared with --no-ring's, signals aside): with
 * 1024 every event of lockloop (404), counts-pie-O2 (8127) and cxx_threads (1366) has the
 * same site as at a stop; with 512, 4, 47 and 0 of them lose frames (lockloop's main has a
 * 512-byte array); with 256, 4, 6847 and 1216. A frame beyond the copy is missing, never stale.
 */
#define RING_STACK_COPY 1024
/* Slots by default (2.3 MB with stack copies): events between two drains before a pad stops. */
#define RING_SLOTS 2048

struct ring {
	int fd;
	struct bp_ring_hdr *hdr;
	uint8_t *slots;
	size_t size;
	uint64_t nslots, slot_size;
	uint64_t tail; /* the lowest sequence number not consumed */
	/* rdtsc -> CLOCK_MONOTONIC: ns = ns0 + (tsc - tsc0) * ns_per_tick, the rate re-measured
	 * over the whole run at each drain */
	uint64_t tsc0, ns0;
	double ns_per_tick;
	uint64_t last_cal;
	bool unknown_tid; /* said once */
	uint32_t acts_handled; /* activations acknowledged: hdr->acts_seen */
};

static uint64_t
rdtsc(void)
{
	return __builtin_ia32_rdtsc();
}

static size_t
env_slots(void)
{
	/* A hidden knob for the tests (a tiny ring fills at once): a power of two, >= 2. */
	const char *s = getenv("AVISO_RING_SLOTS");
	unsigned long n = s ? strtoul(s, NULL, 10) : 0;

	if (n < 2 || n > (1ul << 20) || (n & (n - 1)))
		return RING_SLOTS;
	return n;
}

static size_t
env_copy(void)
{
	/* A hidden knob for measuring the stack copy's size: bytes, a multiple of 8. */
	const char *s = getenv("AVISO_RING_COPY");
	unsigned long n = s ? strtoul(s, NULL, 10) : 0;

	if (!s || n % 8 || n > 65536)
		return RING_STACK_COPY;
	return n;
}

int
ring_create(struct tracer *t)
{
	struct ring *rg = calloc(1, sizeof(*rg));
	void *mem;
	int r;

	if (!rg)
		return -ENOMEM;
	rg->nslots = env_slots();
	rg->slot_size = BP_RING_SLOT_HEAD + (t->frames > 1 ? env_copy() : 0);
	rg->size = BP_RING_HDR_SIZE + rg->nslots * rg->slot_size;
	rg->fd = memfd_create("aviso-ring", MFD_CLOEXEC);
	if (rg->fd < 0 || ftruncate(rg->fd, (off_t)rg->size) < 0) {
		r = -errno;
		goto fail;
	}
	mem = mmap(NULL, rg->size, PROT_READ | PROT_WRITE, MAP_SHARED, rg->fd, 0);
	if (mem == MAP_FAILED) {
		r = -errno;
		goto fail;
	}
	rg->hdr = mem;
	rg->slots = (uint8_t *)mem + BP_RING_HDR_SIZE;
	rg->hdr->nslots = rg->nslots;
	rg->hdr->mask = rg->nslots - 1;
	rg->hdr->slot_size = rg->slot_size;
	rg->hdr->copy = rg->slot_size - BP_RING_SLOT_HEAD;
	rg->hdr->trap_all = t->ring_trap_all; /* constraints may be loaded already */
	rg->ns0 = now_ns();
	rg->tsc0 = rdtsc();
	rg->ns_per_tick = 0;
	t->ring = rg;
	return 0;
fail:
	if (rg->fd >= 0)
		close(rg->fd);
	free(rg);
	return r;
}

void
ring_destroy(struct tracer *t)
{
	struct ring *rg = t->ring;

	if (!rg)
		return;
	munmap(rg->hdr, rg->size);
	close(rg->fd);
	free(rg);
	t->ring = NULL;
}

/* The end of the [stack] mapping of @pid: stack copies must not read past it. */
static uint64_t
main_stack_end(pid_t pid)
{
	char path[64], line[512];
	unsigned long long lo, hi, end = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "[stack]") && sscanf(line, "%llx-%llx", &lo, &hi) == 2)
			end = hi;
	fclose(f);
	return end;
}

static int
inject(struct process *p, struct thread *hands, long nr, long a0, long a1, long a2, long a3,
       long a4, long a5, long *ret)
{
	const long args[6] = {a0, a1, a2, a3, a4, a5};
	int pending = 0, r;

	r = bp_aspace_inject(p->as, hands->tid, nr, args, ret, &pending);
	if (pending)
		hands->pending_sig = pending;
	if (r == 0 && *ret < 0 && *ret > -4096)
		r = (int)*ret;
	return r;
}

int
ring_map(struct tracer *t, struct process *p, pid_t tid)
{
	struct ring *rg = t->ring;
	struct thread *hands = thread_find(t, tid);
	struct user_regs_struct regs;
	char path[64];
	long fd = -1, addr = 0, ignored;
	uint64_t at;
	int r;

	if (!rg || !hands || bp_aspace_ring(p->as))
		return 0;
	/*
	 * The target opens the tracer's memfd through /proc/TRACER/fd/N (a memfd opens there like
	 * a file, with the opener's access checked as for ptrace-read of the tracer: same user).
	 * The path goes below the red zone of the thread lending its hands, which is stopped.
	 */
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)getpid(), rg->fd);
	if (ptrace(PTRACE_GETREGS, tid, 0, &regs) < 0)
		return -errno;
	at = (regs.rsp - 1024) & ~15ull;
	r = bp_mem_write(bp_aspace_memfd(p->as), at, path, strlen(path) + 1);
	if (r == 0)
		r = inject(p, hands, SYS_openat, AT_FDCWD, (long)at, O_RDWR | O_CLOEXEC, 0, 0, 0,
			   &fd);
	if (r == 0)
		r = inject(p, hands, SYS_mmap, 0, (long)rg->size, PROT_READ | PROT_WRITE,
			   MAP_SHARED, fd, 0, &addr);
	if (fd >= 0)
		inject(p, hands, SYS_close, fd, 0, 0, 0, 0, 0, &ignored);
	if (r < 0)
		return r;
	return bp_aspace_set_ring(p->as, (uint64_t)addr, main_stack_end(p->pid));
}

int
ring_unmap(struct tracer *t, struct process *p, pid_t tid)
{
	struct thread *hands = thread_find(t, tid);
	uint64_t addr = p->as ? bp_aspace_ring(p->as) : 0;
	long ret;

	if (!t->ring || !addr || !hands)
		return 0;
	return inject(p, hands, SYS_munmap, (long)addr, (long)t->ring->size, 0, 0, 0, 0, &ret);
}

static struct bp_ring_slot *
slot_at(const struct ring *rg, uint64_t seq)
{
	return (struct bp_ring_slot *)(rg->slots + (seq & (rg->nslots - 1)) * rg->slot_size);
}

static uint64_t
tsc_ns(struct ring *rg, uint64_t tsc)
{
	if (rg->ns_per_tick <= 0 || tsc < rg->tsc0)
		return now_ns();
	return rg->ns0 + (uint64_t)((double)(tsc - rg->tsc0) * rg->ns_per_tick);
}

/*
 * An activating event (ring.S: its return address in decide[]) has been handled: the events
 * that followed it stop no more on its account (they still do under trap-all, which its
 * handling turned on if it activated an instance).
 */
static void
ack_activation(struct ring *rg)
{
	rg->acts_handled++;
	__atomic_store_n(&rg->hdr->acts_seen, rg->acts_handled, __ATOMIC_RELEASE);
}

void
ring_ack_thread(struct tracer *t, struct thread *th)
{
	if (th->act_unacked && t->ring) {
		th->act_unacked = false;
		ack_activation(t->ring);
	}
}

static void
calibrate(struct ring *rg)
{
	uint64_t ns = now_ns(), tsc = rdtsc();

	/* Re-measured at most every 10 ms; the first after at least 1 ms of run. */
	if (ns - rg->last_cal < 10000000u || ns - rg->ns0 < 1000000u || tsc <= rg->tsc0)
		return;
	rg->last_cal = ns;
	rg->ns_per_tick = (double)(ns - rg->ns0) / (double)(tsc - rg->tsc0);
}

/* One committed slot -> one event, as record_hit() makes it at a stop. */
static void
take(struct tracer *t, struct ring *rg, const struct bp_ring_slot *sl)
{
	struct thread *th = thread_find(t, (pid_t)sl->tid);
	struct process *p = th ? th->proc : NULL;
	const struct bp_breakpoint *bp;
	const struct bp_module *m;
	const struct site *site;
	uint64_t pcs[TRACER_MAX_FRAMES + 1];
	unsigned n = 0;

	if (th) {
		th->ring_fresh = false; /* its latest slot, until it proves to be an event */
		/* It stops right after its commit: acknowledged there (ring_on_trap()). */
		if (sl->trap == BP_RING_SLOT_ACTIVATE)
			th->act_unacked = true;
	} else if (sl->trap == BP_RING_SLOT_ACTIVATE) {
		ack_activation(rg); /* no stop of ours will come for it */
	}
	if (!th && !rg->unknown_tid) {
		/* Every writer is a traced thread drained at its exit: a tid from elsewhere means
		 * struct pthread is not glibc 2.36's (ring.S reads the tid at %fs:0x2d0). */
		rg->unknown_tid = true;
		log_msg("event ring: an event of unknown tid %u dropped (not glibc 2.36?); "
			"--no-ring records such a program", sl->tid);
	}
	if (!p || !p->record || !p->as || !(bp = bp_aspace_lookup_ring_pad(p->as, sl->pad)))
		return; /* not an event of a traced program (a vfork child, a module gone) */
	m = bp_aspace_module_at(p->as, sl->ret);
	if (m && m->system)
		return; /* glibc calling itself */
	if (t->frames > 1 && sl->stack_len >= 8) {
		struct user_regs_struct at;

		memset(&at, 0, sizeof(at));
		at.rip = bp->addr;
		at.rsp = sl->rsp;
		at.rbp = sl->rbp;
		at.rbx = sl->rbx;
		at.r12 = sl->r12;
		at.r13 = sl->r13;
		at.r14 = sl->r14;
		at.r15 = sl->r15;
		at.rdi = sl->rdi;
		n = capture_kept_pcs(t, p, &at, sl->stack, sl->stack_len, pcs, t->frames + 1);
	}
	if (n < 2 || pcs[1] != sl->ret) {
		pcs[1] = sl->ret;
		n = 2;
	}
	site = site_of(t, p, pcs + 1, n - 1, true);
	th->in_a = NULL; /* its next event: whatever it acquired at an A, it has (stall.c) */
	th->a_pending = false;
	uint64_t ns = tsc_ns(rg, sl->tsc);
	record_event_at(t, th, (enum model_event_kind)bp->tag, site, sl->rdi, ns);
	th->ring_ns = ns;
	th->ring_seq = sl->seq;
	th->ring_site = site;
	th->ring_kind = (enum model_event_kind)bp->tag;
	th->ring_object = sl->rdi;
	/* Decided at its stop; one that went on needed no decision (ring.S): none was active. */
	th->ring_fresh = sl->trap != BP_RING_SLOT_GOES;
	th->trap_ns = th->ring_fresh ? ns : 0; /* stopped right after it: the tracer's time */
	if (!th->ring_fresh)
		stall_on_ring_event(t, th);
	t->ring_events++;
}

void
ring_drain(struct tracer *t)
{
	ring_drain_some(t, SIZE_MAX);
}

size_t
ring_drain_some(struct tracer *t, size_t max)
{
	struct ring *rg = t->ring;
	uint64_t head, s;
	size_t taken = 0;

	if (!rg)
		return 0;
	head = __atomic_load_n(&rg->hdr->next, __ATOMIC_ACQUIRE);
	if (head == rg->tail)
		return 0;
	calibrate(rg);
	/* Seqs past tail + nslots are threads waiting for room: nothing written yet. */
	if (head - rg->tail > rg->nslots)
		head = rg->tail + rg->nslots;
	for (s = rg->tail; s < head && taken < max; s++) {
		struct bp_ring_slot *sl = slot_at(rg, s);

		if (__atomic_load_n(&sl->commit, __ATOMIC_ACQUIRE) != s + 1)
			continue; /* consumed already, or a thread is writing it: later */
		take(t, rg, sl);
		__atomic_store_n(&sl->commit, BP_RING_CONSUMED(s), __ATOMIC_RELEASE);
		taken++;
	}
	/* The slot's mark says which lap consumed it: a mark of the previous lap is not ours. */
	while (rg->tail < head && slot_at(rg, rg->tail)->commit == BP_RING_CONSUMED(rg->tail))
		rg->tail++;
	__atomic_store_n(&rg->hdr->drained, rg->tail, __ATOMIC_RELEASE);
	return taken;
}

void
ring_forget_unfinished(struct tracer *t)
{
	struct ring *rg = t->ring;
	uint64_t head;

	if (!rg)
		return;
	ring_drain(t);
	head = __atomic_load_n(&rg->hdr->next, __ATOMIC_ACQUIRE);
	if (head - rg->tail > rg->nslots)
		head = rg->tail + rg->nslots;
	for (uint64_t s = rg->tail; s < head; s++)
		slot_at(rg, s)->commit = BP_RING_CONSUMED(s);
	rg->tail = head;
	__atomic_store_n(&rg->hdr->drained, rg->tail, __ATOMIC_RELEASE);
	/* An activation of a writer that died before its stop is never handled: forgotten too. */
	rg->acts_handled = __atomic_load_n(&rg->hdr->acts, __ATOMIC_ACQUIRE);
	__atomic_store_n(&rg->hdr->acts_seen, rg->acts_handled, __ATOMIC_RELEASE);
}

int
ring_on_trap(struct tracer *t, struct thread *th, enum bp_ring_trap trap)
{
	if (trap == BP_RING_TRAP_FULL) {
		/*
		 * Room for it and some more, and it goes on; the loop drains the rest meanwhile
		 * (t->ring_busy), on the other CPU if there is one, instead of holding it for all.
		 */
		ring_drain_some(t, t->ring ? t->ring->nslots / 8 + 1 : 0);
		t->ring_busy = true;
		return thread_resume(t, th, 0);
	}
	ring_drain(t);
	/* It stopped right after writing its slot: the tracer's time began then (or later, if
	 * some of it was counted already: stall.c credit_tracer_holds()). */
	if (th->trap_ns && th->trap_ns < th->stop_ns)
		th->stop_ns = th->trap_ns;
	th->trap_ns = 0;
	bool held = false;
	if (th->a_pending) {
		/* Its stop, decided earlier: from here its A runs as soon as it is resumed. */
		th->a_pending = false;
		if (!th->stalled)
			th->in_a = stall_acquires(th->ring_kind) ? th->in_a : NULL;
	}
	if (th->ring_fresh) {
		th->ring_fresh = false;
		t->ring_stops++;
		stall_decide_earlier(t, th);
		/* Held here, after its slot, if so decided: released by the stall code. */
		held = stall_on_event(t, th, th->ring_kind, th->ring_site, th->ring_object);
	} else if (th->stalled) {
		/* Decided before its stop came (stall_decide_earlier()): held here, at its event,
		 * also if it was interrupted meanwhile (that stop, when it comes, finds nothing). */
		th->stall_at_stop = false;
		held = true;
	}
	ring_ack_thread(t, th); /* its activation, if it was one, is handled now */
	return held ? 0 : thread_resume(t, th, 0);
}

int
ring_set_decision_sites(struct tracer *t, const uint64_t *ret_addrs, size_t n)
{
	struct bp_ring_hdr *h = t->ring ? t->ring->hdr : NULL;

	if (!h)
		return n ? -ENOTSUP : 0;
	if (n > BP_RING_MAX_DECIDE)
		return -E2BIG;
	/* Shrink first, then write, then grow: a pad reads a consistent prefix at any time. */
	__atomic_store_n(&h->ndecide, 0, __ATOMIC_RELEASE);
	for (size_t i = 0; i < n; i++)
		h->decide[i] = ret_addrs[i];
	__atomic_store_n(&h->ndecide, (uint32_t)n, __ATOMIC_RELEASE);
	return 0;
}

void
ring_trap_all(struct tracer *t, bool on)
{
	t->ring_trap_all = on;
	if (t->ring)
		t->ring->hdr->trap_all = on;
}
