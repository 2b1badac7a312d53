/* Identifiers with check characters used across gdx.
 *
 * The unified social credit code (统一社会信用代码, GB 32100-2015) names every
 * unit: 18 characters from 0-9 and A-Y without I, O, S, V, Z; the last is a
 * check character over the first 17 (weights 3^i mod 31).
 */
#ifndef GDX_IDS_H
#define GDX_IDS_H

#define GDX_UNIT_CODE_SIZE 19     /* a unified social credit code and its NUL */
#define GDX_RESOURCE_CODE_SIZE 41 /* a catalog resource code ("101002/000001") and its NUL */
#define GDX_NAME_SIZE 65          /* a user name, node id or resource name (64) and its NUL */

/* 0 when `code` is a well-formed code with the right check character;
 * otherwise GDX_EINVAL and a reason in why (may be NULL). */
int gdx_uscc_check(const char *code, const char **why);
/* Computes the check character for 17 characters (for tests and tools);
 * returns 0 when the input holds a character outside the alphabet. */
char gdx_uscc_check_char(const char *first17);

#endif
