/* The file adapter's internals, shared by its two files:
 *   file.c        the adapter: settings, the reads from the broker (listings
 *                 with long polls, chunk hashes, the data streamed with
 *                 backpressure and an optional rate), health, metrics
 *   file_index.c  the folder's index: the directory walk and inotify, stable
 *                 files, the format gate and the hashes (in the thread pool),
 *                 the index saved in the state folder
 * Everything runs on the loop but the walk and the hashing (uv_queue_work),
 * which get copies and hand results back to their done callbacks.
 */
#ifndef GDX_ADAPTER_FILE_INT_H
#define GDX_ADAPTER_FILE_INT_H

#include <jansson.h>
#include <stdint.h>
#include <sys/stat.h>

#include "adapter.h"
#include "digest.h"
#include "fileguard.h"

#define HASH_HEX (GDX_SHA256_HEX_SIZE - 1) /* a SHA-256 in hex, without the NUL */
#define READ_BLOCK (1u << 20)

enum { F_PENDING, F_READY, F_REFUSED };

typedef struct {
  char *path;
  int64_t size, mtime_ns, ctime_ns;
  uint64_t ino;
  int state;
  uint64_t changed_at; /* loop ms when last seen different */
  long long gen;
  char sha256[GDX_SHA256_HEX_SIZE], sm3[GDX_SHA256_HEX_SIZE], format[8];
  char *chunks;        /* HASH_HEX hex digits per chunk */
  char why[200];
} fent;

typedef struct fres fres;

struct fres {
  gdx_adapter *a;
  char folder[1024], index_file[1100];
  char formats[10][8];
  int nformats;
  long long stable_ms, rescan_s, chunk, max_bytes, max_mibps;
  struct stream *paced;      /* reads ahead of max_mibps, resumed by the timer */
  fent **ents;
  size_t n, cap;
  fent **by_gen;             /* the ready files in gen order, for listings; */
  size_t nby;
  int by_gen_stale;          /* rebuilt when a file's state changed */
  long long gen;
  char epoch[17];
  uv_timer_t timer, wtimer;
  uv_poll_t ipoll;
  int ifd, scanning, hashing, scan_again, closing, handles;
  int index_dirty;           /* saved by the timer, at most once a second */
  uint64_t index_saved;
  uint64_t next_full, scan_at;
  gdx_fileguard *guard;
  struct waiter *waiters;
  int nwaiters, streams;
  json_t *events;
  /* metrics */
  unsigned long long refused_total, hashed_total, bytes_sent, reads, changed_during_read;
  char last_error[200];
};

/* file_index.c */
/* The entry of path (bsearch in the sorted index), or NULL. */
fent *gdx__file_find(fres *r, const char *path);
void gdx__file_ent_free(fent *e);
long long gdx__file_nchunks(const fres *r, int64_t size);
void gdx__file_index_load(fres *r);
void gdx__file_index_save(fres *r);
/* What tells one version of a file from another, and its comparison. */
void gdx__file_stat_into(fent *e, const struct stat *st);
int gdx__file_same_stat(const fent *a, const fent *b);
/* A scan in ms (the 100 ms timer starts it). */
void gdx__file_schedule(fres *r, uint64_t ms);
/* The timer's part for the index: saved at most once a second, the scans
 * that are due, the next stable file hashed. */
void gdx__file_index_tick(fres *r);
void gdx__file_on_inotify(uv_poll_t *p, int status, int events);

/* file.c */
/* Long polls of listings answered now that a file became ready. */
void gdx__file_notify_waiters(fres *r);
/* Frees r once its handles are closed and no scan, hash or read is left. */
void gdx__file_maybe_free(fres *r);

#endif
