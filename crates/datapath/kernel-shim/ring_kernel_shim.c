/* rdco kernel shim for ring 0.17 in Windows drivers, aarch64 only (compiled with clang-16 and linked
 * first by `cargo xtask package`, xtask/src/cross.rs; see docs/performance.md, "Backend decision").
 *
 * ring's aarch64 Windows CPU detection (src/cpu/arm/windows.rs) calls the user-mode
 * kernel32!IsProcessorFeaturePresent through windows-sys (the import `__imp_IsProcessorFeaturePresent`).
 * A driver must not import kernel32.dll, so this object defines that import slot itself and forwards to
 * ntoskrnl!ExIsProcessorFeaturePresent (wdm.h; callable at any IRQL; same PF_* numbering). xtask archives
 * this object and puts the archive first on the linker command line (-Z pre-link-arg): lld-link takes a
 * lazy symbol from the first archive that defines it, so windows-sys's kernel32 import-library member is
 * never pulled in, and the member is linked only when ring's CPU detection is. The BOOLEAN result is
 * widened to BOOL explicitly. */
typedef unsigned char BOOLEAN;
typedef int BOOL;
typedef unsigned long DWORD;

__declspec(dllimport) BOOLEAN __stdcall ExIsProcessorFeaturePresent(DWORD feature);

/* Both the function and its import slot are defined here, so neither member of the import library
 * (the thunk or `__imp_`) is ever pulled in. */
BOOL __stdcall IsProcessorFeaturePresent(DWORD feature) {
    return ExIsProcessorFeaturePresent(feature) ? 1 : 0;
}

BOOL(__stdcall *const __imp_IsProcessorFeaturePresent)(DWORD) = IsProcessorFeaturePresent;
