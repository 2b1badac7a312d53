/* When a gap in the change log may still fill (table_int.h).
 *
 * gdx_changelog's seq is an AUTO_INCREMENT: a writer's trigger takes its
 * seq when it writes the entry, and the writer commits later, so a change
 * read can meet a gap - a seq missing between entries it sees - that fills
 * when that transaction commits. Passing a gap that then fills loses the
 * change for that subscriber (its position is past it); holding one that
 * never fills (a rolled-back entry, another table's entries purged) stalls
 * it. A gap is held exactly while it may still fill:
 *
 * - its seqs are locked: the writer's entry is in the log, uncommitted, and
 *   InnoDB keeps it locked until the commit or rollback. A locking read
 *   with NOWAIT over the gap fails at once with ER_LOCK_WAIT_TIMEOUT (1205)
 *   where a plain read would see nothing; a row it finds that the batch's
 *   read did not have was committed since. Either holds the gap.
 * - or it is young: InnoDB hands a seq out (under its AUTO_INCREMENT mutex,
 *   innodb_autoinc_lock_mode 1 or 2) a moment before it writes the row, and
 *   in between there is no lock to find. Seqs are handed out in order, so
 *   the missing ones were handed out before any higher seq was committed:
 *   once the adapter has seen one as high committed GRACE_MS ago (the
 *   node's monotonic clock), a writer still without its row has stalled
 *   that long. Until then the gap is held; a rolled-back transaction's gap
 *   is passed after that grace, another table's purged entries (seen
 *   committed long before) at once.
 *
 * information_schema.INNODB_TRX is not asked: InnoDB refreshes that view
 * only when nobody has read it for 100 ms, so with readers that come more
 * often (many subscribers, monitoring) it can miss a transaction for good.
 *
 * A batch without a gap costs nothing here. With gaps, at most one locking
 * read covers all the ones old enough to pass; only when it finds a lock or
 * a new row, a few more (a bisection) find the first gap to hold.
 */
#include <mysqld_error.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "table_int.h"

#define GAP_GRACE_NS (GRACE_MS * 1000000ull)

/* Marks are kept sorted by seq, their times rising with it: a mark that
 * another has seen no later for a seq at least as high says nothing. Of
 * the marks older than the grace only the highest is needed (every seq up
 * to it is old). */
void gdx__table_seen(table_res *r, long long seq, uint64_t at) {
  uv_mutex_lock(&r->seen_mu);
  seen_mark *m = r->seen;
  int n = r->nseen, old = 0;
  while (old < n && m[old].at + GAP_GRACE_NS <= at)
    old++;
  if (old > 1) {
    memmove(m, m + old - 1, (size_t)(n - old + 1) * sizeof(*m));
    n -= old - 1;
  }
  if (n == SEEN_MAX) { /* the second oldest goes: its seqs count as seen later, held longer */
    memmove(m + 1, m + 2, (size_t)(n - 2) * sizeof(*m));
    n--;
  }
  int i = 0;
  while (i < n && m[i].seq < seq)
    i++;
  if (i == n || m[i].at > at) { /* else a seq this high was seen as early */
    int k = i, end = i < n && m[i].seq == seq ? i + 1 : i;
    while (k > 0 && m[k - 1].at >= at) /* lower and seen no earlier */
      k--;
    memmove(m + k + 1, m + end, (size_t)(n - end) * sizeof(*m));
    m[k] = (seen_mark){seq, at};
    n += 1 - (end - k);
  }
  r->nseen = n;
  uv_mutex_unlock(&r->seen_mu);
}

/* The number of gaps gap[0..m) that are old: a seq as high as the gap's
 * last missing one (a seq handed out later, or that one itself, committed
 * and purged since) was seen committed at least the grace before `now`.
 * They come first: the higher the seq, the later it was seen. */
static size_t old_gaps(table_res *r, const long long *seqs, const size_t *gap, size_t m,
                       uint64_t now) {
  uv_mutex_lock(&r->seen_mu);
  size_t g = 0;
  for (int i = 0; i < r->nseen && g < m; i++)
    while (g < m && seqs[gap[g]] - 1 <= r->seen[i].seq && r->seen[i].at + GAP_GRACE_NS <= now)
      g++;
  uv_mutex_unlock(&r->seen_mu);
  return g;
}

/* 1 when something in the log between `after` and seqs[end] (exclusive)
 * is locked by another transaction or was not in the batch (committed
 * since), 0 when not, or a GDX_E* error. The batch has seqs[0..end) there. */
static int range_busy(gdx_db_conn *c, long long after, const long long *seqs, size_t end) {
  gdx_db_param p[] = {GDX_DB_P_INT(after), GDX_DB_P_INT(seqs[end]), GDX_DB_P_INT(end + 1)};
  gdx_db_result res = {0};
  int rc = gdx_db_query(c, "SELECT seq FROM gdx_changelog WHERE seq > ? AND seq < ? "
                           "ORDER BY seq LIMIT ? LOCK IN SHARE MODE NOWAIT",
                        p, 3, end + 1, &res);
  if (rc != GDX_OK)
    return gdx_db_errno(c) == ER_LOCK_WAIT_TIMEOUT ? 1 : rc;
  int busy = res.nrows > end; /* more rows than the batch had: one is new */
  for (size_t i = 0, k = 0; !busy && i < res.nrows; i++) {
    gdx_db_row w = gdx_db_row_at(&res, i);
    long long seq = gdx_db_i64(&w, 0, 1, GDX_DB_ID_MAX);
    while (k < end && seqs[k] < seq) /* entries purged since are not there */
      k++;
    busy = w.rc || k == end || seqs[k] != seq;
  }
  gdx_db_result_free(&res);
  return busy;
}

int gdx__table_gaps_upto(table_res *r, gdx_db_conn *c, long long after, const long long *seqs,
                         size_t n, uint64_t read_at, size_t *upto) {
  *upto = n;
  if (n == 0)
    return GDX_OK;
  gdx__table_seen(r, seqs[n - 1], read_at);
  size_t m = 0, *gap = NULL; /* the entries after a gap, by index */
  for (size_t i = 0; i < n; i++) {
    if (seqs[i] == (i ? seqs[i - 1] : after) + 1)
      continue;
    if (gap == NULL && (gap = malloc(n * sizeof(*gap))) == NULL)
      return GDX_ENOMEM;
    gap[m++] = i;
  }
  if (m == 0)
    return GDX_OK;
  size_t old = old_gaps(r, seqs, gap, m, read_at), hold = old;
  int busy = old ? range_busy(c, after, seqs, gap[old - 1]) : 0;
  if (busy == 1) { /* the first gap whose range up to it is busy */
    size_t lo = 0, hi = old - 1;
    while (busy >= 0 && lo < hi) {
      size_t mid = lo + (hi - lo) / 2;
      busy = range_busy(c, after, seqs, gap[mid]);
      if (busy == 1)
        hi = mid;
      else if (busy == 0)
        lo = mid + 1;
    }
    hold = lo;
  }
  if (hold < m)
    *upto = gap[hold];
  free(gap);
  return busy < 0 ? busy : GDX_OK;
}
