/* rdco kernel shim: the freestanding <assert.h> ring's C needs when cross-built for a Windows driver.
 * No CRT exists in a kernel image; a failed assertion traps (bug check), NDEBUG removes it. */
#ifndef RDCO_SHIM_ASSERT_H
#define RDCO_SHIM_ASSERT_H
#ifdef NDEBUG
#define assert(x) ((void)0)
#else
#define assert(x) ((x) ? (void)0 : __builtin_trap())
#endif
#ifndef __cplusplus
#define static_assert _Static_assert
#endif
#endif
