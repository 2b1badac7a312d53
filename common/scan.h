/* Virus scanning of received files (R-EX-6) with libclamav.
 *
 * The engine is loaded once from a signature folder (ClamAV's .cvd, .cld,
 * .hdb, .ndb … files: the official databases, or locally made ones such as
 * the tests' signature for the EICAR test file) and is read-only after
 * that, so any thread may scan with it. Archives (a .docx is one) are
 * scanned inside; a file beyond the size limits counts as not scanned,
 * never as clean.
 */
#ifndef GDX_SCAN_H
#define GDX_SCAN_H

#include <stddef.h>

typedef struct gdx_scanner gdx_scanner;

/* Loads the signatures in dbdir; *signatures gets how many. Errors name
 * the folder and what libclamav said. */
int gdx_scanner_new(const char *dbdir, gdx_scanner **out, unsigned *signatures, char *err,
                    size_t n);
void gdx_scanner_free(gdx_scanner *s);

enum { GDX_SCAN_CLEAN = 0, GDX_SCAN_INFECTED = 1 };
/* The largest file scanned whole (libclamav stops at 2 GiB). */
#define GDX_SCAN_MAX_BYTES 2147483647LL
/* Scans the file at path: GDX_SCAN_CLEAN, GDX_SCAN_INFECTED with the
 * signature's name in name, or a GDX_E* failure with why in err (a file
 * that could not be scanned is never clean). */
int gdx_scanner_scan(const gdx_scanner *s, const char *path, char *name, size_t n, char *err,
                     size_t errlen);

#endif
