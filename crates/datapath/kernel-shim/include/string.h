/* rdco kernel shim: the freestanding <string.h> ring's C needs. memcpy/memset/memcmp resolve at link
 * time to compiler_builtins (`-Zbuild-std-features=compiler-builtins-mem`), never to a CRT. */
#ifndef RDCO_SHIM_STRING_H
#define RDCO_SHIM_STRING_H
#include <stddef.h>
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
#endif
