/* rdco kernel shim: ring includes <stdlib.h> under _MSC_VER only for the `_byteswap_ulong` intrinsic,
 * which clang-cl provides as a builtin; nothing else from the CRT is declared. */
#ifndef RDCO_SHIM_STDLIB_H
#define RDCO_SHIM_STDLIB_H
#include <stddef.h>
unsigned long __cdecl _byteswap_ulong(unsigned long);
unsigned __int64 __cdecl _byteswap_uint64(unsigned __int64);
#endif
