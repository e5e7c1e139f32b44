//! Tagged non-paged pool allocations owned by Rust values.
use core::ffi::c_void;
use core::ptr::NonNull;

use crate::ffi::ntos::{
    ExAllocatePool2, ExFreePoolWithTag, NTSTATUS, POOL_FLAG_NON_PAGED, STATUS_INSUFFICIENT_RESOURCES,
};

/// A `T` in its own non-paged pool block with a pool tag; freed with that tag on drop.
/// Allocation and drop at IRQL <= DISPATCH_LEVEL.
pub struct PoolBox<T> {
    ptr: NonNull<T>,
    tag: u32,
}

impl<T> PoolBox<T> {
    /// Moves `value` into a new pool block tagged `tag`.
    pub fn new(value: T, tag: u32) -> Result<Self, NTSTATUS> {
        const { assert!(core::mem::align_of::<T>() <= 16, "pool blocks are 16-byte aligned") };
        // SAFETY: ExAllocatePool2 may be called at IRQL <= DISPATCH_LEVEL (the caller's contract) with
        // any size; it returns null on failure, handled below.
        let raw = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, core::mem::size_of::<T>().max(1), tag) };
        let ptr = NonNull::new(raw.cast::<T>()).ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
        // SAFETY: the block is fresh, large enough and 16-byte aligned (checked above for T).
        unsafe { ptr.as_ptr().write(value) };
        Ok(PoolBox { ptr, tag })
    }

    /// Gives up ownership, for handing the block to the kernel as a context pointer.
    pub fn into_raw(self) -> *mut T {
        let ptr = self.ptr.as_ptr();
        core::mem::forget(self);
        ptr
    }

    /// Takes back ownership of a block made by [`PoolBox::new`] and released by [`PoolBox::into_raw`].
    ///
    /// # Safety
    /// `ptr` must come from `into_raw` of a `PoolBox<T>` made with `tag`, and not have been taken back.
    pub unsafe fn from_raw(ptr: *mut T, tag: u32) -> Self {
        // SAFETY: the caller guarantees `ptr` came from `into_raw`, which never yields null.
        PoolBox { ptr: unsafe { NonNull::new_unchecked(ptr) }, tag }
    }
}

impl<T> core::ops::Deref for PoolBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the block holds an initialised T owned by this box.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> core::ops::DerefMut for PoolBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the block holds an initialised T owned exclusively by this box.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T> Drop for PoolBox<T> {
    fn drop(&mut self) {
        // SAFETY: the box owns an initialised T, dropped exactly once here.
        unsafe { core::ptr::drop_in_place(self.ptr.as_ptr()) };
        // SAFETY: the block came from ExAllocatePool2 with `self.tag` and is freed exactly once.
        unsafe { ExFreePoolWithTag(self.ptr.as_ptr().cast::<c_void>(), self.tag) };
    }
}

impl<T> core::fmt::Debug for PoolBox<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PoolBox").field("ptr", &self.ptr).field("tag", &self.tag).finish()
    }
}
