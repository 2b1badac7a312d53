/* The way a subscription's ledger entries reach the broker, one for table
 * and folder subscriptions alike.
 *
 * The entries wait in a source the subscription keeps, written together
 * with what they record: the gdx_sync_ledger table of the front-end
 * database for a table (in the transaction that applies the batch), the
 * file <folder>/.gdx/ledger.jsonl for a folder (once the file is in
 * place). The outbox runs one round at a time:
 *
 *   read up to `batch` pending entries from the source
 *     -> POST them to the broker, wrapped in the source's body
 *     -> once the broker has accepted them (200), the source forgets them
 *     -> another round while there are more (a full batch, or a kick
 *        that came meanwhile).
 *
 * A failed read, post or forget is tried again later (after 1 s when the
 * database queue was full, 5 s otherwise), so entries are forgotten only
 * once the broker has them, and none wait for the next one to be written.
 * A stop cancels a post in flight (its entries go with the next start) and
 * lets a read or forget that runs finish.
 */
#ifndef GDX_LEDGER_OUTBOX_H
#define GDX_LEDGER_OUTBOX_H

#include <jansson.h>
#include <uv.h>

#include "broker_client.h"

typedef struct gdx_ledger_outbox gdx_ledger_outbox;

/* What the subscription provides. read and forget answer by calling
 * gdx_ledger_outbox_read_done() resp. gdx_ledger_outbox_forget_done() on
 * the loop thread, at once or later (from a database job's callback). */
typedef struct {
  /* Up to max pending entries, oldest first. */
  void (*read)(gdx_ledger_outbox *o, size_t max, void *data);
  /* Forgets the entries of the last read: those up to `mark`, the value
   * the read passed to gdx_ledger_outbox_read_done(). */
  void (*forget)(gdx_ledger_outbox *o, long long mark, void *data);
  /* The post's JSON body around the entries (takes them). */
  json_t *(*body)(json_t *entries, void *data);
  /* Optional: the broker's answer to a post it accepted (NULL when it is
   * not JSON). */
  void (*accepted)(const json_t *answer, void *data);
  /* Optional, for the log: a post that failed. status and why as
   * gdx_broker_call() reports them; the broker's answer, if any, in
   * answer[0, len). Not called while stopping. */
  void (*failed)(int status, long http, const char *answer, size_t len, const char *why,
                 void *data);
} gdx_ledger_source;

typedef struct {
  gdx_broker_client *broker;
  const char *path;                /* "/node/v1/ledger/12" (copied) */
  size_t batch;                    /* entries per post */
  const gdx_ledger_source *source; /* must outlive the outbox */
  void *data;                      /* the source's */
} gdx_ledger_outbox_opts;

int gdx_ledger_outbox_start(uv_loop_t *loop, const gdx_ledger_outbox_opts *o,
                            gdx_ledger_outbox **out);
/* There may be new entries: a round now, or after the one under way. */
void gdx_ledger_outbox_kick(gdx_ledger_outbox *o);
/* cb runs once nothing is pending; the outbox is freed then. */
void gdx_ledger_outbox_stop(gdx_ledger_outbox *o, void (*cb)(void *), void *data);

/* The source's answers. read: GDX_OK with the entries (taken; may be
 * NULL when count is 0), `count` the entries consumed from the source
 * (0: none pending; more than the array holds when some could not be
 * read and go with them), and `mark` for forget; or a failure (GDX_EBUSY:
 * the database queue is full). forget: GDX_OK or a failure. */
void gdx_ledger_outbox_read_done(gdx_ledger_outbox *o, int status, json_t *entries, size_t count,
                                 long long mark);
void gdx_ledger_outbox_forget_done(gdx_ledger_outbox *o, int status);

#endif
