/* A file subscription on the consumer's node: the folder of a provider's
 * file resource, delivered into a local folder through the broker.
 *
 *   subscriptions = ( { authorization = 13; folder = "/srv/gdx/in/reports";
 *                       versions = 5; } );
 *
 * It lists the provider's ready files (a long poll when caught up) and
 * fetches each new or changed one:
 *   1. the chunk hashes of that version (SHA-256 per chunk_mib);
 *   2. the bytes, from the end of what is already verified, into
 *      <folder>/.gdx/part/<hash of the path>: each chunk is written and
 *      hashed in the thread pool while the next arrives, and must match -
 *      a mismatch (the file changed at the provider while being sent) drops
 *      the transfer and lists again; nothing half old, half new is kept;
 *      after any interruption (either node, the broker, the network) the
 *      transfer resumes after the chunks of the part file that still match,
 *      so only the unverified tail is sent again;
 *   3. before it becomes visible: the content must be an allowed format
 *      (fileguard.h) and clean for the virus scanner (libclamav, signatures
 *      from scan.signatures); otherwise it goes to .gdx/quarantine/ and the
 *      broker hears of it (alarm and audit records for both units);
 *   4. the previous copy, if any, moves to .gdx/versions/<path>/<UTC time>
 *      (the newest `versions` are kept; 0: replaced), and the part file is
 *      synced and renamed into place atomically;
 *   5. the delivered file's SM3 is computed (off the transfer's path) and
 *      compared with the provider's; the ledger entry (size, hashes, bytes
 *      received, resumed from, delivered/quarantined) is kept in
 *      .gdx/ledger.jsonl until the broker has recorded it (ledger_outbox.h).
 * What was delivered is remembered in .gdx/state.json (rewritten when a
 * listing's files are done) and .gdx/state.jsonl (a line per file in
 * between), so a restart lists again and fetches only what is new.
 */
#ifndef GDX_FOLDER_SUB_H
#define GDX_FOLDER_SUB_H

#include <uv.h>

#include "broker_client.h"
#include "buf.h"
#include "scan.h"

typedef struct gdx_folder_sub gdx_folder_sub;

typedef struct {
  uv_loop_t *loop;
  gdx_broker_client *broker;
  const gdx_scanner *scanner; /* NULL: scanning switched off (scan.enabled = false) */
} gdx_folder_sub_env;

typedef struct {
  long long authorization;
  char folder[1024];       /* absolute */
  long long versions;      /* previous copies kept per file */
  long long wait_ms;       /* long poll of the listing; 0: poll every poll_ms */
  long long poll_ms;
  int once;                /* fetch: what is there now, then stop */
} gdx_folder_sub_opts;

/* env must outlive the subscription. GDX_ECONFIG when the folder's .gdx
 * cannot be made, with err. */
int gdx_folder_sub_start(const gdx_folder_sub_env *env, const gdx_folder_sub_opts *o,
                         gdx_folder_sub **out, char *err, size_t errlen);
/* Stops after what is in flight (a listing's long poll is cancelled); cb
 * runs once everything is closed. */
void gdx_folder_sub_stop(gdx_folder_sub *s, void (*cb)(void *), void *data);
long long gdx_folder_sub_authorization(const gdx_folder_sub *s);
void gdx_folder_sub_metrics(gdx_folder_sub *s, gdx_buf *out);

#endif
