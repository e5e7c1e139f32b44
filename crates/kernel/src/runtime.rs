//! What a Rust kernel image needs besides the code: a global allocator, a panic handler, `_fltused` and
//! the stack-probe import.
//!
//! | build | supplied by |
//! |---|---|
//! | host (Linux, std) | the test binary's std; nothing here |
//! | cross (`target_os = "windows"`, no `wdk` feature) | this module, over the raw-dylib kernel imports |
//! | wdk (`--features wdk` on a Windows host) | `wdk-alloc` (allocator) and `wdk-panic` (panic handler) |
//!
//! Driver state and packet pools never rely on the global allocator: they use tagged pool allocations
//! through the kernel wrappers, which the simulated kernel tracks. The global allocator only serves
//! configuration-time `alloc` use (for example the engine's peer table), under [`GLOBAL_POOL_TAG`].

/// Pool tag of the global allocator's allocations: `'rdco'` as it reads in a pool dump ("ocdr" in memory
/// order, as Windows tags are written with the first character in the lowest byte).
pub const GLOBAL_POOL_TAG: u32 = u32::from_le_bytes(*b"rdco");

/// Bug check code a panic raises: a panic in the kernel is a driver bug, and stopping the machine with a
/// recognisable code is more honest than spinning or continuing in an unknown state.
pub const PANIC_BUGCHECK_CODE: u32 = 0x5244_0001;

#[cfg(all(target_os = "windows", not(feature = "wdk")))]
mod native {
    use core::alloc::{GlobalAlloc, Layout};
    use core::ffi::c_void;

    use crate::ffi::ntos::{ExAllocatePool2, ExFreePoolWithTag, KeBugCheckEx, POOL_FLAG_NON_PAGED};

    /// Largest alignment `ExAllocatePool2` guarantees: 16 bytes on 64-bit Windows ("allocations are
    /// aligned on a 16-byte boundary on 64-bit systems", ExAllocatePool2 documentation).
    const POOL_ALIGNMENT: usize = 16;

    /// The global allocator of the cross build: non-paged, no-execute pool with [`super::GLOBAL_POOL_TAG`].
    /// IRQL <= DISPATCH_LEVEL for both allocation and free, as for the underlying calls.
    struct PoolAllocator;

    // SAFETY: `alloc` returns either null or a fresh non-paged block of at least `layout.size()` bytes,
    // aligned to 16 bytes, and refuses layouts that need more; `dealloc` frees exactly such blocks with
    // the tag they were allocated with.
    unsafe impl GlobalAlloc for PoolAllocator {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if layout.align() > POOL_ALIGNMENT {
                return core::ptr::null_mut();
            }
            // SAFETY: ExAllocatePool2 may be called at IRQL <= DISPATCH_LEVEL with any size; it returns
            // null on failure, which GlobalAlloc callers handle.
            unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, layout.size(), super::GLOBAL_POOL_TAG) }.cast()
        }

        unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
            // SAFETY: `ptr` came from `alloc` above (GlobalAlloc contract), so it is a live pool block
            // with our tag.
            unsafe { ExFreePoolWithTag(ptr.cast::<c_void>(), super::GLOBAL_POOL_TAG) };
        }
    }

    #[global_allocator]
    static ALLOCATOR: PoolAllocator = PoolAllocator;

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        let line = info.location().map_or(0, |l| l.line() as usize);
        // SAFETY: KeBugCheckEx may be called at any IRQL and does not return.
        unsafe { KeBugCheckEx(super::PANIC_BUGCHECK_CODE, line, 0, 0, 0) }
    }

    /// The MSVC toolchain's marker that an image uses floating point; referenced by floating-point code
    /// and otherwise supplied by the CRT, which a driver does not link.
    #[no_mangle]
    #[used]
    static _fltused: i32 = 0;

    #[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
    extern "system" {
        /// The stack probe LLVM calls in functions whose frame exceeds a page. The WDK links it from
        /// `ntoskrnl.lib`; `ntoskrnl.exe` exports it on x64 and ARM64. Never called from Rust.
        fn __chkstk();
    }

    /// Keeps the `__chkstk` import in the raw-dylib import library so LLVM's calls resolve to it.
    #[used]
    static CHKSTK: unsafe extern "system" fn() = __chkstk;
}

#[cfg(all(target_os = "windows", feature = "wdk"))]
mod wdk {
    //! On a WDK host the WDK crates supply the runtime (untested here; see docs/building.md).
    #[global_allocator]
    static ALLOCATOR: wdk_alloc::WdkAllocator = wdk_alloc::WdkAllocator;

    use wdk_panic as _;
}
