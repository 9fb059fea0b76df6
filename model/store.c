/*
 * The store: the only file that speaks LMDB. One environment per directory per process
 * (LMDB forbids opening one twice in a process), one unnamed database, and two ways in: a read
 * transaction (lock-free against writers) and a write transaction that grows the map and retries
 * when it is full. LMDB's codes become -errno here.
 *
 * Growing the map needs no transaction active in this process, so every transaction holds
 * @resize shared and growth takes it exclusive: rare, and brief. Another process's growth shows
 * as MDB_MAP_RESIZED at the next transaction start, and is adopted the same way.
 */
#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "model/internal.h"

/* Why 256: a thread pool's workers plus the embedded tracers of one machine, each holding at
 * most one read transaction at a time. */
#define STORE_MAX_READERS 256
/* Growth doubles the map: 24 doublings of 64 MiB is more than any disk. */
#define STORE_MAX_GROWTHS 24

struct store {
	MDB_env *env;
	MDB_dbi dbi;
	pthread_rwlock_t resize;
	dev_t dev;
	ino_t ino;
	int refs;	    /* model_open() calls sharing this environment */
	struct store *next; /* in the process's list of open environments */
};

struct store_txn {
	MDB_txn *txn;
	MDB_dbi dbi;
	bool map_full; /* a put hit MDB_MAP_FULL: the write is retried after growth */
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct store *registry;

static int
map_err(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_MAP_FULL:
		return -ENOSPC;
	case MDB_READERS_FULL:
		return -EAGAIN;
	case MDB_TXN_FULL:
		return -E2BIG;
	case MDB_BAD_VALSIZE:
		return -EINVAL;
	case MDB_INVALID:
	case MDB_VERSION_MISMATCH:
		return -EPROTO;
	default:
		return rc > 0 ? -rc : -EIO;
	}
}

/* mkdir -p @dir. */
static int
make_dirs(const char *dir)
{
	char *p = strdup(dir);
	int ret = 0;

	if (!p)
		return -ENOMEM;
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST) {
			ret = -errno;
			break;
		}
		*s = c;
		if (c == '\0')
			break;
	}
	free(p);
	return ret;
}

static int
env_open(const char *dir, size_t map_size, bool no_sync, struct store *s)
{
	MDB_txn *txn = NULL;
	int rc, dead;

	rc = mdb_env_create(&s->env);
	if (rc)
		return map_err(rc);
	if ((rc = mdb_env_set_maxreaders(s->env, STORE_MAX_READERS)) ||
	    (rc = mdb_env_set_mapsize(s->env, map_size)) ||
	    (rc = mdb_env_open(s->env, dir, MDB_NOTLS | (no_sync ? MDB_NOSYNC : 0), 0600)))
		goto leave;
	/* Reader slots left by processes that died (kill -9) inside a read transaction. */
	mdb_reader_check(s->env, &dead);
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) ||
	    (rc = mdb_dbi_open(txn, NULL, 0, &s->dbi)))
		goto leave;
	rc = mdb_txn_commit(txn);
	txn = NULL;
leave:
	if (txn)
		mdb_txn_abort(txn);
	if (rc) {
		mdb_env_close(s->env);
		s->env = NULL;
	}
	return map_err(rc);
}

int
model_store_open(const char *dir, size_t map_size, bool no_sync, struct store **ret_store)
{
	struct store *s = NULL;
	struct stat st;
	int ret;

	ret = make_dirs(dir);
	if (ret < 0)
		return ret;
	if (stat(dir, &st) < 0)
		return -errno;
	pthread_mutex_lock(&registry_lock);
	for (s = registry; s; s = s->next) {
		if (s->dev == st.st_dev && s->ino == st.st_ino) {
			s->refs++;
			*ret_store = s;
			ret = 0;
			goto leave;
		}
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		ret = -ENOMEM;
		goto leave;
	}
	/*
	 * Processes that create the same store at the same moment can see one another's
	 * half-made files (seen once in ~20 runs of the several-processes test): a few short
	 * retries, bounded, before giving up.
	 */
	ret = env_open(dir, map_size, no_sync, s);
	for (int tries = 0; ret < 0 && ret != -ENOMEM && ret != -EACCES && tries < 5; tries++) {
		nanosleep(&(struct timespec){0, 20000000}, NULL);
		ret = env_open(dir, map_size, no_sync, s);
	}
	if (ret < 0) {
		free(s);
		goto leave;
	}
	pthread_rwlockattr_t attr;
	pthread_rwlockattr_init(&attr);
	/* Growth must not starve behind a stream of readers. */
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&s->resize, &attr);
	pthread_rwlockattr_destroy(&attr);
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->refs = 1;
	s->next = registry;
	registry = s;
	*ret_store = s;
leave:
	pthread_mutex_unlock(&registry_lock);
	return ret;
}

void
model_store_close(struct store *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&registry_lock);
	if (--s->refs == 0) {
		for (struct store **p = &registry; *p; p = &(*p)->next) {
			if (*p == s) {
				*p = s->next;
				break;
			}
		}
		mdb_env_close(s->env);
		pthread_rwlock_destroy(&s->resize);
		free(s);
	}
	pthread_mutex_unlock(&registry_lock);
}

/* Sets the map size with no transaction active in the process: @size 0 adopts another
 * process's growth, otherwise the map doubles. */
static int
resize(struct store *s, bool grow)
{
	MDB_envinfo info;
	int rc;

	pthread_rwlock_wrlock(&s->resize);
	mdb_env_info(s->env, &info);
	rc = mdb_env_set_mapsize(s->env, grow ? info.me_mapsize * 2 : 0);
	pthread_rwlock_unlock(&s->resize);
	return map_err(rc);
}

/* Begins a transaction holding @resize shared; adopts another process's growth first. */
static int
txn_begin(struct store *s, unsigned flags, struct store_txn *t)
{
	for (int tries = 0;; tries++) {
		pthread_rwlock_rdlock(&s->resize);
		int rc = mdb_txn_begin(s->env, NULL, flags, &t->txn);
		if (rc == 0) {
			t->dbi = s->dbi;
			t->map_full = false;
			return 0;
		}
		pthread_rwlock_unlock(&s->resize);
		if (rc != MDB_MAP_RESIZED || tries >= STORE_MAX_GROWTHS)
			return map_err(rc);
		int ret = resize(s, false);
		if (ret < 0)
			return ret;
	}
}

int
model_store_read(struct store *s, store_fn fn, void *arg)
{
	struct store_txn t;
	int ret = txn_begin(s, MDB_RDONLY, &t);

	if (ret < 0)
		return ret;
	ret = fn(&t, arg);
	mdb_txn_abort(t.txn);
	pthread_rwlock_unlock(&s->resize);
	return ret;
}

int
model_store_write(struct store *s, store_fn fn, void *arg)
{
	for (int tries = 0;; tries++) {
		struct store_txn t;
		int ret = txn_begin(s, 0, &t);
		if (ret < 0)
			return ret;
		ret = fn(&t, arg);
		if (ret >= 0) {
			int rc = mdb_txn_commit(t.txn);
			t.map_full = rc == MDB_MAP_FULL;
			if (rc && !t.map_full)
				ret = map_err(rc);
		} else {
			mdb_txn_abort(t.txn);
		}
		pthread_rwlock_unlock(&s->resize);
		if (!t.map_full)
			return ret;
		if (tries >= STORE_MAX_GROWTHS)
			return -ENOSPC;
		ret = resize(s, true);
		if (ret < 0)
			return ret;
	}
}

int
model_store_get(struct store_txn *t, const void *key, size_t klen, const void **ret_val,
		size_t *ret_len)
{
	MDB_val k = {.mv_size = klen, .mv_data = (void *)key}, v;
	int rc = mdb_get(t->txn, t->dbi, &k, &v);

	if (rc)
		return map_err(rc);
	*ret_val = v.mv_data;
	if (ret_len)
		*ret_len = v.mv_size;
	return 0;
}

int
model_store_put(struct store_txn *t, const void *key, size_t klen, const void *val, size_t vlen)
{
	MDB_val k = {.mv_size = klen, .mv_data = (void *)key};
	MDB_val v = {.mv_size = vlen, .mv_data = (void *)val};
	int rc = mdb_put(t->txn, t->dbi, &k, &v, 0);

	if (rc == MDB_MAP_FULL)
		t->map_full = true;
	return map_err(rc);
}

int
model_store_scan(struct store_txn *t, const void *prefix, size_t plen, store_scan_fn fn, void *arg)
{
	MDB_cursor *cur;
	MDB_val k = {.mv_size = plen, .mv_data = (void *)prefix}, v;
	int rc, ret = 0;

	rc = mdb_cursor_open(t->txn, t->dbi, &cur);
	if (rc)
		return map_err(rc);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
			break;
		ret = fn(k.mv_data, k.mv_size, v.mv_data, v.mv_size, arg);
		if (ret)
			break;
	}
	mdb_cursor_close(cur);
	if (rc && rc != MDB_NOTFOUND)
		return map_err(rc);
	return ret;
}

int
model_store_size(struct store *s, size_t *ret_map, size_t *ret_used)
{
	MDB_envinfo info;
	MDB_stat st;
	int rc;

	if ((rc = mdb_env_info(s->env, &info)) || (rc = mdb_env_stat(s->env, &st)))
		return map_err(rc);
	*ret_map = info.me_mapsize;
	*ret_used = (info.me_last_pgno + 1) * (size_t)st.ms_psize;
	return 0;
}
