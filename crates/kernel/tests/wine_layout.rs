//! Independent layout check: the sizes and field offsets our Rust declarations assert are written
//! into a C file of `_Static_assert`s and compiled with the host `gcc` against Wine's Windows/DDK
//! headers (`ddk/wdm.h`, `ddk/wsk.h`, `ddk/ndis.h`, `winternl.h`, `ws2def.h`, `ws2ipdef.h`). Every
//! number in the C file comes from `size_of`/`offset_of!` on the Rust types, so a passing compile
//! means our layout equals Wine's (an independent transcription of the Windows x64 ABI) for every
//! structure Wine defines. Constants Wine defines are compared the same way.
//!
//! Headers: Debian's `libwine-dev` (8.0), extracted without installing its dependency tree:
//!
//! ```sh
//! cd "${CARGO_TARGET_DIR:-target}" && apt-get download libwine-dev && dpkg-deb -x libwine-dev_*.deb winehdr
//! ```
//!
//! The test looks for `wine/windows/ddk/wsk.h` under `$RDCO_WINE_INCLUDE` (the `.../wine/windows`
//! directory itself), `/usr/include/wine/wine/windows` (package installed), `<target>/winehdr/...`
//! and `/tmp/winehdr/...`. Without headers (or without `gcc`) it prints how to get them and passes,
//! unless `RDCO_REQUIRE_WINE_HEADERS=1`, in which case it fails (for CI).
//!
//! A second, independent source is mingw-w64's headers (Debian `mingw-w64-common`, headers only, no
//! dependencies), compiled with `clang` for the real Windows targets (`x86_64-w64-mingw32` and, for
//! the user-mode NDIS/socket structures, `aarch64-w64-mingw32`), so `ULONG` is genuinely 32-bit and
//! ARM64 is checked to match x64:
//!
//! ```sh
//! cd "${CARGO_TARGET_DIR:-target}" && apt-get download mingw-w64-common && dpkg-deb -x mingw-w64-common_*.deb mingwhdr
//! ```
//!
//! It looks under `$RDCO_MINGW_INCLUDE`, `/usr/share/mingw-w64/include`,
//! `<target>/mingwhdr/usr/share/mingw-w64/include` and `/tmp/mingwhdr/...`, with `$RDCO_CLANG`,
//! `clang-16` or `clang`, and skips (or fails under `RDCO_REQUIRE_WINE_HEADERS=1`) the same way.
//!
//! The test only reads type layouts; it never calls the kernel crate's extern functions, so it links
//! on the host without the simulated kernel.

use core::mem::{offset_of, size_of};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use kernel::ffi::mdl::*;
use kernel::ffi::ndis::*;
use kernel::ffi::ntos::*;
use kernel::ffi::oid::GUID;
use kernel::ffi::wsk::*;

/// Collects `_Static_assert` lines.
struct Checks {
    c: String,
    count: usize,
}

impl Checks {
    fn new() -> Self {
        Self { c: String::new(), count: 0 }
    }

    fn raw(&mut self, expr: &str, value: &str, what: &str) {
        self.count += 1;
        writeln!(self.c, "_Static_assert(({expr}) == ({value}), \"{what}\");").unwrap();
    }

    /// `sizeof(c_type) == rust_size`.
    fn size(&mut self, c_type: &str, rust_size: usize) {
        self.raw(
            &format!("sizeof({c_type})"),
            &rust_size.to_string(),
            &format!("sizeof({c_type}) != {rust_size} (Rust)"),
        );
    }

    /// `offsetof(c_type, c_field) == rust_offset`.
    fn off(&mut self, c_type: &str, c_field: &str, rust_offset: usize) {
        self.raw(
            &format!("offsetof({c_type}, {c_field})"),
            &rust_offset.to_string(),
            &format!("offsetof({c_type}, {c_field}) != {rust_offset} (Rust)"),
        );
    }

    /// `(long long)(C_CONSTANT) == rust_value`.
    fn constant(&mut self, c_name: &str, rust_value: i128) {
        self.raw(
            &format!("(long long)({c_name})"),
            &format!("{rust_value}LL"),
            &format!("{c_name} != {rust_value} (Rust)"),
        );
    }
}

macro_rules! size {
    ($ch:ident, $t:ty, $c:literal) => {
        $ch.size($c, size_of::<$t>())
    };
    ($ch:ident, $t:ty) => {
        $ch.size(stringify!($t), size_of::<$t>())
    };
}

macro_rules! off {
    ($ch:ident, $t:ident, $($f:ident),+) => {
        $( $ch.off(stringify!($t), stringify!($f), offset_of!($t, $f)); )+
    };
}

/// Integer constants of any width, widened losslessly for the comparison.
trait Wide {
    fn wide(self) -> i128;
}
macro_rules! wide {
    ($($t:ty),*) => { $(impl Wide for $t { fn wide(self) -> i128 { i128::try_from(self).unwrap() } })* };
}
wide!(i8, i16, i32, i64, u8, u16, u32, u64, usize);

macro_rules! konst {
    ($ch:ident, $($name:ident),+ $(,)?) => {
        $( $ch.constant(stringify!($name), Wide::wide($name)); )+
    };
}

// One flat list of checks, in header order, reads better than artificial splits.
#[allow(clippy::too_many_lines)]
fn generate() -> Checks {
    let mut ch = Checks::new();

    // The ABI the headers are compiled for must be Windows x64's (LLP64): ULONG 32 bits, pointers 64.
    ch.raw("sizeof(ULONG)", "4", "ULONG must be 32-bit (LLP64)");
    ch.raw("sizeof(LONG)", "4", "LONG must be 32-bit (LLP64)");
    ch.raw("sizeof(PVOID)", "8", "pointers must be 64-bit");
    ch.raw("sizeof(ULONG_PTR)", &size_of::<usize>().to_string(), "ULONG_PTR");
    ch.raw("sizeof(SIZE_T)", &size_of::<usize>().to_string(), "SIZE_T");
    ch.raw("sizeof(NTSTATUS)", &size_of::<NTSTATUS>().to_string(), "NTSTATUS");
    ch.raw("sizeof(KIRQL)", &size_of::<KIRQL>().to_string(), "KIRQL");
    ch.raw("sizeof(BOOLEAN)", &size_of::<BOOLEAN>().to_string(), "BOOLEAN");
    size!(ch, KSPIN_LOCK);
    size!(ch, GUID);

    // ---- ntos ----
    size!(ch, UNICODE_STRING);
    off!(ch, UNICODE_STRING, Length, MaximumLength, Buffer);
    size!(ch, LIST_ENTRY);
    off!(ch, LIST_ENTRY, Flink, Blink);
    size!(ch, SINGLE_LIST_ENTRY);
    size!(ch, IO_STATUS_BLOCK);
    ch.off("IO_STATUS_BLOCK", "Status", offset_of!(IO_STATUS_BLOCK, u));
    ch.off("IO_STATUS_BLOCK", "Pointer", offset_of!(IO_STATUS_BLOCK, u));
    off!(ch, IO_STATUS_BLOCK, Information);

    size!(ch, DRIVER_OBJECT);
    off!(
        ch,
        DRIVER_OBJECT,
        Type,
        Size,
        DeviceObject,
        Flags,
        DriverStart,
        DriverSize,
        DriverSection,
        DriverExtension,
        DriverName,
        HardwareDatabase,
        FastIoDispatch,
        DriverInit,
        DriverStartIo,
        DriverUnload,
        MajorFunction
    );
    ch.raw(
        "sizeof(((DRIVER_OBJECT *)0)->MajorFunction) / sizeof(PDRIVER_DISPATCH)",
        &(IRP_MJ_MAXIMUM_FUNCTION + 1).to_string(),
        "MajorFunction count",
    );
    off!(ch, DRIVER_EXTENSION, DriverObject, AddDevice, Count, ServiceKeyName);
    konst!(
        ch,
        IRP_MJ_MAXIMUM_FUNCTION,
        IRP_MJ_CREATE,
        IRP_MJ_CLOSE,
        IRP_MJ_READ,
        IRP_MJ_WRITE,
        IRP_MJ_DEVICE_CONTROL,
        IRP_MJ_INTERNAL_DEVICE_CONTROL,
        IRP_MJ_CLEANUP,
        IRP_MJ_PNP
    );
    // Completion-routine control bits and the IRP type (IoAllocateIrp / IoSetCompletionRoutine).
    konst!(
        ch,
        SL_PENDING_RETURNED,
        SL_INVOKE_ON_CANCEL,
        SL_INVOKE_ON_SUCCESS,
        SL_INVOKE_ON_ERROR,
        IO_TYPE_IRP
    );

    size!(ch, IRP);
    off!(
        ch,
        IRP,
        Type,
        Size,
        MdlAddress,
        Flags,
        AssociatedIrp,
        ThreadListEntry,
        IoStatus,
        RequestorMode,
        PendingReturned,
        StackCount,
        CurrentLocation,
        Cancel,
        CancelIrql,
        ApcEnvironment,
        AllocationFlags,
        UserIosb,
        UserEvent,
        Overlay,
        CancelRoutine,
        UserBuffer,
        Tail
    );
    ch.off("IRP", "AssociatedIrp.SystemBuffer", offset_of!(IRP, AssociatedIrp));
    let tail = offset_of!(IRP, Tail);
    ch.off("IRP", "Tail.Overlay.DriverContext", tail + offset_of!(IRP_TAIL_OVERLAY, DriverContext));
    ch.off("IRP", "Tail.Overlay.Thread", tail + offset_of!(IRP_TAIL_OVERLAY, Thread));
    ch.off("IRP", "Tail.Overlay.AuxiliaryBuffer", tail + offset_of!(IRP_TAIL_OVERLAY, AuxiliaryBuffer));
    ch.off("IRP", "Tail.Overlay.ListEntry", tail + offset_of!(IRP_TAIL_OVERLAY, ListEntry));
    ch.off(
        "IRP",
        "Tail.Overlay.CurrentStackLocation",
        tail + offset_of!(IRP_TAIL_OVERLAY, CurrentStackLocation),
    );
    ch.off("IRP", "Tail.Overlay.OriginalFileObject", tail + offset_of!(IRP_TAIL_OVERLAY, OriginalFileObject));
    ch.off("IRP", "Tail.Apc", tail);
    ch.raw("sizeof(KAPC)", &size_of::<[u64; 11]>().to_string(), "KAPC (IRP.Tail.Apc) size");

    size!(ch, IO_STACK_LOCATION);
    off!(
        ch,
        IO_STACK_LOCATION,
        MajorFunction,
        MinorFunction,
        Flags,
        Control,
        Parameters,
        DeviceObject,
        FileObject,
        CompletionRoutine,
        Context
    );
    let params = offset_of!(IO_STACK_LOCATION, Parameters);
    for (c, r) in [
        ("OutputBufferLength", offset_of!(IO_STACK_DEVICE_IO_CONTROL, OutputBufferLength)),
        ("InputBufferLength", offset_of!(IO_STACK_DEVICE_IO_CONTROL, InputBufferLength)),
        ("IoControlCode", offset_of!(IO_STACK_DEVICE_IO_CONTROL, IoControlCode)),
        ("Type3InputBuffer", offset_of!(IO_STACK_DEVICE_IO_CONTROL, Type3InputBuffer)),
    ] {
        ch.off("IO_STACK_LOCATION", &format!("Parameters.DeviceIoControl.{c}"), params + r);
    }
    ch.raw(
        "sizeof(((IO_STACK_LOCATION *)0)->Parameters)",
        &size_of::<IO_STACK_PARAMETERS>().to_string(),
        "Parameters union",
    );

    size!(ch, KEVENT);
    size!(ch, KDPC);
    size!(ch, KTIMER);
    size!(ch, KSPIN_LOCK_QUEUE);
    size!(ch, KLOCK_QUEUE_HANDLE);
    off!(ch, KLOCK_QUEUE_HANDLE, LockQueue, OldIrql);
    konst!(
        ch,
        NotificationEvent,
        SynchronizationEvent,
        NotificationTimer,
        SynchronizationTimer,
        DelayedWorkQueue,
        CriticalWorkQueue
    );

    // Status codes Wine's ntstatus.h defines.
    konst!(
        ch,
        STATUS_SUCCESS,
        STATUS_TIMEOUT,
        STATUS_PENDING,
        STATUS_BUFFER_OVERFLOW,
        STATUS_UNSUCCESSFUL,
        STATUS_NOT_IMPLEMENTED,
        STATUS_INVALID_PARAMETER,
        STATUS_INVALID_DEVICE_REQUEST,
        STATUS_MORE_PROCESSING_REQUIRED,
        STATUS_NO_MEMORY,
        STATUS_ACCESS_DENIED,
        STATUS_BUFFER_TOO_SMALL,
        STATUS_OBJECT_NAME_COLLISION,
        STATUS_DELETE_PENDING,
        STATUS_INTEGER_OVERFLOW,
        STATUS_INSUFFICIENT_RESOURCES,
        STATUS_DEVICE_NOT_READY,
        STATUS_IO_TIMEOUT,
        STATUS_NOT_SUPPORTED,
        STATUS_CANCELLED,
        STATUS_INVALID_ADDRESS,
        STATUS_INVALID_DEVICE_STATE,
        STATUS_INVALID_BUFFER_SIZE,
        STATUS_DATA_NOT_ACCEPTED,
        STATUS_NOT_FOUND,
        STATUS_NETWORK_UNREACHABLE,
        STATUS_HOST_UNREACHABLE,
        STATUS_REQUEST_ABORTED,
        STATUS_DEVICE_REMOVED,
    );

    // ---- MDL ----
    size!(ch, MDL);
    off!(ch, MDL, Next, Size, MdlFlags, Process, MappedSystemVa, StartVa, ByteCount, ByteOffset);
    konst!(
        ch,
        MDL_MAPPED_TO_SYSTEM_VA,
        MDL_PAGES_LOCKED,
        MDL_SOURCE_IS_NONPAGED_POOL,
        MDL_ALLOCATED_FIXED_SIZE,
        MDL_PARTIAL,
        MDL_PARTIAL_HAS_BEEN_MAPPED,
        MDL_IO_PAGE_READ,
        MDL_WRITE_OPERATION,
        MDL_PARENT_MAPPED_SYSTEM_VA,
        MDL_FREE_EXTRA_PTES,
        MDL_DESCRIBES_AWE,
        MDL_IO_SPACE,
        MDL_NETWORK_HEADER,
        MDL_MAPPING_CAN_FAIL,
        MDL_ALLOCATED_MUST_SUCCEED,
    );
    // MDL_INTERNAL is 0x8000 in C (an int); ours is the same bit pattern in an i16.
    ch.constant("MDL_INTERNAL", MDL_INTERNAL.cast_unsigned().wide());
    konst!(ch, MmNonCached, MmCached, LowPagePriority, NormalPagePriority, HighPagePriority);

    // ---- NDIS (what Wine's ddk/ndis.h has) ----
    size!(ch, NET_PNP_EVENT);
    off!(
        ch,
        NET_PNP_EVENT,
        NetEvent,
        Buffer,
        BufferLength,
        NdisReserved,
        TransportReserved,
        TdiReserved,
        TdiClientReserved
    );
    konst!(
        ch,
        NetEventSetPower,
        NetEventQueryPower,
        NetEventQueryRemoveDevice,
        NetEventCancelRemoveDevice,
        NetEventReconfigure,
        NetEventBindList,
        NetEventBindsComplete,
        NetEventPnPCapabilities,
        NetEventPause,
        NetEventRestart,
        NetEventPortActivation,
        NetEventPortDeactivation,
        NetEventIMReEnableDevice,
    );

    // ---- WSK ----
    size!(ch, WSK_SOCKET);
    off!(ch, WSK_SOCKET, Dispatch);
    size!(ch, WSK_BUF);
    off!(ch, WSK_BUF, Mdl, Offset, Length);
    size!(ch, WSK_BUF_LIST);
    off!(ch, WSK_BUF_LIST, Next, Buffer);
    size!(ch, WSK_DATA_INDICATION);
    off!(ch, WSK_DATA_INDICATION, Next, Buffer);
    size!(ch, WSK_DATAGRAM_INDICATION);
    off!(ch, WSK_DATAGRAM_INDICATION, Next, Buffer, ControlInfo, ControlInfoLength, RemoteAddress);
    size!(ch, WSK_CLIENT_DISPATCH);
    off!(ch, WSK_CLIENT_DISPATCH, Version, Reserved, WskClientEvent);
    size!(ch, WSK_CLIENT_NPI);
    off!(ch, WSK_CLIENT_NPI, ClientContext, Dispatch);
    size!(ch, WSK_PROVIDER_NPI);
    off!(ch, WSK_PROVIDER_NPI, Client, Dispatch);
    size!(ch, WSK_REGISTRATION);
    off!(
        ch,
        WSK_REGISTRATION,
        ReservedRegistrationState,
        ReservedRegistrationContext,
        ReservedRegistrationLock
    );
    size!(ch, WSK_PROVIDER_DISPATCH);
    off!(
        ch,
        WSK_PROVIDER_DISPATCH,
        Version,
        Reserved,
        WskSocket,
        WskSocketConnect,
        WskControlClient,
        WskGetAddressInfo,
        WskFreeAddressInfo,
        WskGetNameInfo
    );
    size!(ch, WSK_CLIENT_CONNECTION_DISPATCH);
    off!(ch, WSK_CLIENT_CONNECTION_DISPATCH, WskReceiveEvent, WskDisconnectEvent, WskSendBacklogEvent);
    // Ours declares the WSK 1.0 members only (Wine's adds the RS2 ones after them): offsets, not size.
    off!(
        ch,
        WSK_PROVIDER_CONNECTION_DISPATCH,
        Basic,
        WskBind,
        WskConnect,
        WskGetLocalAddress,
        WskGetRemoteAddress,
        WskSend,
        WskReceive,
        WskDisconnect,
        WskRelease
    );
    size!(ch, WSK_PROVIDER_BASIC_DISPATCH);
    off!(ch, WSK_PROVIDER_BASIC_DISPATCH, WskControlSocket, WskCloseSocket);
    size!(ch, WSK_PROVIDER_DATAGRAM_DISPATCH);
    off!(
        ch,
        WSK_PROVIDER_DATAGRAM_DISPATCH,
        Basic,
        WskBind,
        WskSendTo,
        WskReceiveFrom,
        WskRelease,
        WskGetLocalAddress,
        WskSendMessages
    );
    konst!(
        ch,
        WSK_NO_WAIT,
        WSK_INFINITE_WAIT,
        WSK_FLAG_BASIC_SOCKET,
        WSK_FLAG_LISTEN_SOCKET,
        WSK_FLAG_CONNECTION_SOCKET,
        WSK_FLAG_DATAGRAM_SOCKET,
        WSK_FLAG_STREAM_SOCKET,
        WskSetOption,
        WskGetOption,
        WskIoctl,
    );
    ch.constant("MAKE_WSK_VERSION(1, 0)", WSK_VERSION_1_0.wide());

    // ---- sockets (ws2def.h / ws2ipdef.h) ----
    size!(ch, SOCKADDR);
    off!(ch, SOCKADDR, sa_family, sa_data);
    size!(ch, SOCKADDR_IN);
    off!(ch, SOCKADDR_IN, sin_family, sin_port, sin_addr, sin_zero);
    size!(ch, SOCKADDR_IN6);
    off!(ch, SOCKADDR_IN6, sin6_family, sin6_port, sin6_flowinfo, sin6_addr, sin6_scope_id);
    size!(ch, SOCKADDR_INET);
    ch.off("SOCKADDR_INET", "Ipv4", 0);
    ch.off("SOCKADDR_INET", "Ipv6", 0);
    ch.off("SOCKADDR_INET", "si_family", 0);
    size!(ch, SOCKADDR_STORAGE);
    size!(ch, IN_ADDR);
    size!(ch, IN6_ADDR);
    size!(ch, CMSGHDR, "WSACMSGHDR");
    ch.off("WSACMSGHDR", "cmsg_len", offset_of!(CMSGHDR, cmsg_len));
    ch.off("WSACMSGHDR", "cmsg_level", offset_of!(CMSGHDR, cmsg_level));
    ch.off("WSACMSGHDR", "cmsg_type", offset_of!(CMSGHDR, cmsg_type));
    // Wine's WSA_CMSG_LEN/WSA_CMSG_SPACE are not constant expressions in C, so they are not compared.
    size!(ch, IN_PKTINFO);
    off!(ch, IN_PKTINFO, ipi_addr, ipi_ifindex);
    size!(ch, IN6_PKTINFO);
    off!(ch, IN6_PKTINFO, ipi6_addr, ipi6_ifindex);
    konst!(ch, AF_UNSPEC, AF_INET, AF_INET6, SOCK_STREAM, SOCK_DGRAM, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_IPV6);
    konst!(ch, SOL_SOCKET, SO_REUSEADDR, SO_SNDBUF, SO_RCVBUF, IP_PKTINFO, IPV6_PKTINFO, IPV6_V6ONLY);

    ch
}

const PRELUDE: &str = "\
/* Generated by crates/kernel/tests/wine_layout.rs from the Rust layouts; compiled against Wine. */
#include <stdarg.h>
#include <stddef.h>
#include \"ntstatus.h\"
#define WIN32_NO_STATUS
#include \"windef.h\"
#include \"winbase.h\"
#include \"winternl.h\"
#include \"ddk/wdm.h\"
#include \"winsock2.h\"
#include \"ws2ipdef.h\"
#include \"ddk/wsk.h\"
#include \"ddk/ndis.h\"
";

fn candidate_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("RDCO_WINE_INCLUDE") {
        dirs.push(PathBuf::from(dir));
    }
    dirs.push(PathBuf::from("/usr/include/wine/wine/windows"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"), PathBuf::from);
    dirs.push(target.join("winehdr/usr/include/wine/wine/windows"));
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    dirs.push(Path::new(env!("CARGO_TARGET_TMPDIR")).join("../winehdr/usr/include/wine/wine/windows"));
    dirs.push(PathBuf::from("/tmp/winehdr/usr/include/wine/wine/windows"));
    dirs
}

fn find_headers() -> Option<PathBuf> {
    candidate_dirs().into_iter().find(|d| d.join("ddk/wsk.h").is_file() && d.join("ddk/wdm.h").is_file())
}

fn cc() -> String {
    std::env::var("CC").unwrap_or_else(|_| "gcc".to_owned())
}

fn compile(include: &Path, source: &str, name: &str) -> std::process::Output {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(dir).unwrap();
    let file = dir.join(format!("{name}-{}.c", std::process::id()));
    std::fs::write(&file, source).unwrap();
    let out = Command::new(cc())
        .args(["-fsyntax-only", "-std=gnu11", "-m64", "-fms-extensions", "-fshort-wchar", "-D_WIN64", "-w"])
        .arg("-I")
        .arg(include)
        .arg("-I")
        .arg(include.join("ddk"))
        .arg(&file)
        .output()
        .expect("running the C compiler");
    if out.status.success() {
        let _ = std::fs::remove_file(&file);
    } else {
        eprintln!("kept {} for inspection", file.display());
    }
    out
}

/// Returns the header directory, or `None` after explaining why the check is skipped.
fn prerequisites() -> Option<PathBuf> {
    let require = std::env::var("RDCO_REQUIRE_WINE_HEADERS").is_ok_and(|v| v == "1");
    let have_cc = Command::new(cc()).arg("--version").output().is_ok_and(|o| o.status.success());
    let headers = find_headers();
    match (have_cc, headers) {
        (true, Some(dir)) => Some(dir),
        (have_cc, _) => {
            let why = if have_cc { "Wine headers not found" } else { "no C compiler (gcc or $CC)" };
            let msg = format!(
                "SKIPPED wine_layout: {why}. Searched: {:?}.\n\
                 Get the headers (no install, no dependencies):\n  \
                 cd \"${{CARGO_TARGET_DIR:-target}}\" && apt-get download libwine-dev && dpkg-deb -x libwine-dev_*.deb winehdr\n\
                 or point RDCO_WINE_INCLUDE at .../include/wine/wine/windows. \
                 Set RDCO_REQUIRE_WINE_HEADERS=1 to make this a failure.",
                candidate_dirs(),
            );
            assert!(!require, "{msg}");
            eprintln!("{msg}");
            None
        }
    }
}

#[test]
fn rust_layouts_match_wine_headers() {
    let Some(include) = prerequisites() else { return };
    let checks = generate();
    let source = format!("{PRELUDE}\n{}", checks.c);
    let out = compile(&include, &source, "wine_layout");
    assert!(
        out.status.success(),
        "Rust layout differs from Wine's headers ({}):\n{}\n--- generated C ---\n{source}",
        include.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("wine_layout: {} static assertions passed against {}", checks.count, include.display());
    assert!(checks.count > 200, "suspiciously few checks: {}", checks.count);
}

/// The harness must be able to fail: a deliberately wrong size has to be rejected.
#[test]
fn harness_detects_a_mismatch() {
    let Some(include) = prerequisites() else { return };
    let mut checks = Checks::new();
    checks.size("MDL", size_of::<MDL>() + 8);
    let source = format!("{PRELUDE}\n{}", checks.c);
    let out = compile(&include, &source, "wine_layout_negative");
    assert!(!out.status.success(), "a wrong MDL size compiled; the C harness checks nothing");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sizeof(MDL)"),
        "unexpected failure: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// -------------------------------------------------------------------------------------------------
// Second source: mingw-w64 headers compiled by clang for the Windows targets
// -------------------------------------------------------------------------------------------------

mod mingw {
    use core::mem::{offset_of, size_of};
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use kernel::ffi::mdl::*;
    use kernel::ffi::ndis::*;
    use kernel::ffi::ntos::*;
    use kernel::ffi::oid::*;
    use kernel::ffi::wsk::*;

    use super::{Checks, Wide};

    fn include_dirs() -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        if let Some(dir) = std::env::var_os("RDCO_MINGW_INCLUDE") {
            dirs.push(PathBuf::from(dir));
        }
        dirs.push(PathBuf::from("/usr/share/mingw-w64/include"));
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"), PathBuf::from);
        dirs.push(target.join("mingwhdr/usr/share/mingw-w64/include"));
        dirs.push(Path::new(env!("CARGO_TARGET_TMPDIR")).join("../mingwhdr/usr/share/mingw-w64/include"));
        dirs.push(PathBuf::from("/tmp/mingwhdr/usr/share/mingw-w64/include"));
        dirs
    }

    fn clang() -> Option<(String, PathBuf)> {
        let candidates = std::env::var("RDCO_CLANG")
            .map_or_else(|_| vec!["clang-16".to_owned(), "clang".to_owned()], |c| vec![c]);
        candidates.into_iter().find_map(|c| {
            let out = Command::new(&c).arg("-print-resource-dir").output().ok()?;
            out.status.success().then(|| (c, PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())))
        })
    }

    pub(super) struct Env {
        clang: String,
        resource: PathBuf,
        include: PathBuf,
    }

    pub(super) fn prerequisites() -> Option<Env> {
        let require = std::env::var("RDCO_REQUIRE_WINE_HEADERS").is_ok_and(|v| v == "1");
        let include = include_dirs()
            .into_iter()
            .find(|d| d.join("ddk/wdm.h").is_file() && d.join("ntddndis.h").is_file());
        match (clang(), include) {
            (Some((clang, resource)), Some(include)) => Some(Env { clang, resource, include }),
            (clang, _) => {
                let why = if clang.is_some() {
                    "mingw-w64 headers not found"
                } else {
                    "no clang ($RDCO_CLANG, clang-16, clang)"
                };
                let msg = format!(
                    "SKIPPED mingw layout check: {why}. Searched: {:?}.\n\
                     Get the headers (no install, no dependencies):\n  \
                     cd \"${{CARGO_TARGET_DIR:-target}}\" && apt-get download mingw-w64-common && dpkg-deb -x mingw-w64-common_*.deb mingwhdr",
                    include_dirs()
                );
                assert!(!require, "{msg}");
                eprintln!("{msg}");
                None
            }
        }
    }

    pub(super) fn compile(env: &Env, target: &str, source: &str, name: &str) -> std::process::Output {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        std::fs::create_dir_all(dir).unwrap();
        let file = dir.join(format!("{name}-{target}-{}.c", std::process::id()));
        std::fs::write(&file, source).unwrap();
        let out = Command::new(&env.clang)
            .arg(format!("--target={target}"))
            .args(["-fsyntax-only", "-nostdinc", "-w", "-fms-extensions", "-DUM_NDIS630"])
            .arg("-isystem")
            .arg(env.resource.join("include"))
            .arg("-isystem")
            .arg(&env.include)
            .arg("-isystem")
            .arg(env.include.join("ddk"))
            .arg(&file)
            .output()
            .expect("running clang");
        if out.status.success() {
            let _ = std::fs::remove_file(&file);
        } else {
            eprintln!("kept {} for inspection", file.display());
        }
        out
    }

    /// Kernel-mode structures (`ddk/ntddk.h`, `ddk/wdm.h`, `ntstatus.h`, `ddk/netpnp.h`); x64 only
    /// (mingw's `wdm.h` has no ARM64 branch).
    #[allow(clippy::too_many_lines)] // a flat list of checks
    pub(super) fn kernel_checks() -> (String, Checks) {
        let mut ch = Checks::new();
        ch.raw("sizeof(ULONG)", "4", "ULONG must be 32-bit (LLP64)");
        ch.raw("sizeof(PVOID)", "8", "pointers must be 64-bit");
        size!(ch, UNICODE_STRING);
        off!(ch, UNICODE_STRING, Length, MaximumLength, Buffer);
        size!(ch, LIST_ENTRY);
        size!(ch, IO_STATUS_BLOCK);
        off!(ch, IO_STATUS_BLOCK, Information);
        size!(ch, DRIVER_OBJECT);
        off!(
            ch,
            DRIVER_OBJECT,
            DeviceObject,
            Flags,
            DriverStart,
            DriverSize,
            DriverSection,
            DriverExtension,
            DriverName
        );
        off!(
            ch,
            DRIVER_OBJECT,
            HardwareDatabase,
            FastIoDispatch,
            DriverInit,
            DriverStartIo,
            DriverUnload,
            MajorFunction
        );
        off!(ch, DRIVER_EXTENSION, DriverObject, AddDevice, Count, ServiceKeyName);
        size!(ch, IRP);
        off!(
            ch,
            IRP,
            MdlAddress,
            Flags,
            AssociatedIrp,
            ThreadListEntry,
            IoStatus,
            RequestorMode,
            PendingReturned
        );
        off!(ch, IRP, Cancel, CancelIrql, UserIosb, UserEvent, Overlay, CancelRoutine, UserBuffer, Tail);
        let tail = offset_of!(IRP, Tail);
        ch.off("IRP", "Tail.Overlay.DriverContext", tail + offset_of!(IRP_TAIL_OVERLAY, DriverContext));
        ch.off("IRP", "Tail.Overlay.Thread", tail + offset_of!(IRP_TAIL_OVERLAY, Thread));
        ch.off(
            "IRP",
            "Tail.Overlay.CurrentStackLocation",
            tail + offset_of!(IRP_TAIL_OVERLAY, CurrentStackLocation),
        );
        ch.off(
            "IRP",
            "Tail.Overlay.OriginalFileObject",
            tail + offset_of!(IRP_TAIL_OVERLAY, OriginalFileObject),
        );
        size!(ch, IO_STACK_LOCATION);
        off!(ch, IO_STACK_LOCATION, Parameters, DeviceObject, FileObject, CompletionRoutine, Context);
        let params = offset_of!(IO_STACK_LOCATION, Parameters);
        ch.off("IO_STACK_LOCATION", "Parameters.DeviceIoControl.OutputBufferLength", params);
        ch.off(
            "IO_STACK_LOCATION",
            "Parameters.DeviceIoControl.InputBufferLength",
            params + offset_of!(IO_STACK_DEVICE_IO_CONTROL, InputBufferLength),
        );
        ch.off(
            "IO_STACK_LOCATION",
            "Parameters.DeviceIoControl.IoControlCode",
            params + offset_of!(IO_STACK_DEVICE_IO_CONTROL, IoControlCode),
        );
        ch.off(
            "IO_STACK_LOCATION",
            "Parameters.DeviceIoControl.Type3InputBuffer",
            params + offset_of!(IO_STACK_DEVICE_IO_CONTROL, Type3InputBuffer),
        );
        size!(ch, KEVENT);
        size!(ch, KDPC);
        size!(ch, KTIMER);
        size!(ch, KLOCK_QUEUE_HANDLE);
        off!(ch, KLOCK_QUEUE_HANDLE, OldIrql);
        size!(ch, MDL);
        off!(ch, MDL, Next, Size, MdlFlags, Process, MappedSystemVa, StartVa, ByteCount, ByteOffset);
        // XSTATE_SAVE is opaque to us: our buffer must be at least as large and as aligned.
        ch.raw(
            &format!(
                "sizeof(XSTATE_SAVE) <= {} && _Alignof(XSTATE_SAVE) <= {}",
                size_of::<XSTATE_SAVE>(),
                core::mem::align_of::<XSTATE_SAVE>()
            ),
            "1",
            "XSTATE_SAVE larger or more aligned than our opaque buffer",
        );
        size!(ch, NET_PNP_EVENT);
        off!(ch, NET_PNP_EVENT, Buffer, BufferLength, NdisReserved, TdiClientReserved);
        konst!(
            ch,
            IRP_MJ_CREATE,
            IRP_MJ_CLOSE,
            IRP_MJ_DEVICE_CONTROL,
            IRP_MJ_CLEANUP,
            IRP_MJ_MAXIMUM_FUNCTION
        );
        konst!(
            ch,
            PASSIVE_LEVEL,
            APC_LEVEL,
            DISPATCH_LEVEL,
            HIGH_LEVEL,
            IO_NO_INCREMENT,
            IO_NETWORK_INCREMENT
        );
        konst!(
            ch,
            DPFLTR_IHVDRIVER_ID,
            DPFLTR_ERROR_LEVEL,
            DPFLTR_WARNING_LEVEL,
            DPFLTR_TRACE_LEVEL,
            DPFLTR_INFO_LEVEL
        );
        konst!(
            ch,
            MDL_MAPPED_TO_SYSTEM_VA,
            MDL_SOURCE_IS_NONPAGED_POOL,
            MDL_PARTIAL,
            MDL_NETWORK_HEADER,
            MmCached
        );
        konst!(ch, NormalPagePriority, XSTATE_MASK_LEGACY, NonPagedPool, PagedPool, NonPagedPoolNx);
        konst!(
            ch,
            STATUS_NDIS_INDICATION_REQUIRED,
            STATUS_NDIS_REQUEST_ABORTED,
            STATUS_NDIS_MEDIA_DISCONNECTED,
            STATUS_NDIS_PAUSED,
            STATUS_NDIS_INTERFACE_NOT_FOUND,
            STATUS_NDIS_UNSUPPORTED_REVISION,
            STATUS_NDIS_INVALID_PORT,
            STATUS_NDIS_INVALID_PORT_STATE,
            STATUS_NDIS_LOW_POWER_STATE,
            STATUS_NDIS_NOT_SUPPORTED,
            STATUS_INSUFFICIENT_RESOURCES,
            STATUS_INVALID_DEVICE_STATE,
        );
        let prelude = "#include <ntddk.h>\n#include <ddk/netpnp.h>\n#include <stddef.h>\n".to_owned();
        (prelude, ch)
    }

    /// User-mode-visible NDIS and socket structures (`ntddndis.h` as NDIS 6.30, `ws2def.h`,
    /// `ws2ipdef.h`, `mswsock.h`); checked for x64 and ARM64.
    #[allow(clippy::too_many_lines)] // a flat list of checks
    pub(super) fn user_checks() -> (String, Checks) {
        let mut ch = Checks::new();
        ch.raw("sizeof(ULONG)", "4", "ULONG must be 32-bit (LLP64)");
        size!(ch, NDIS_OBJECT_HEADER);
        off!(ch, NDIS_OBJECT_HEADER, Type, Revision, Size);
        size!(ch, NDIS_TCP_IP_CHECKSUM_OFFLOAD);
        ch.off(
            "NDIS_TCP_IP_CHECKSUM_OFFLOAD",
            "IPv4Receive",
            offset_of!(NDIS_TCP_IP_CHECKSUM_OFFLOAD, IPv4Receive),
        );
        ch.off(
            "NDIS_TCP_IP_CHECKSUM_OFFLOAD",
            "IPv6Transmit",
            offset_of!(NDIS_TCP_IP_CHECKSUM_OFFLOAD, IPv6Transmit),
        );
        ch.off(
            "NDIS_TCP_IP_CHECKSUM_OFFLOAD",
            "IPv6Receive",
            offset_of!(NDIS_TCP_IP_CHECKSUM_OFFLOAD, IPv6Receive),
        );
        size!(ch, NDIS_TCP_LARGE_SEND_OFFLOAD_V1);
        size!(ch, NDIS_IPSEC_OFFLOAD_V1);
        size!(ch, NDIS_TCP_LARGE_SEND_OFFLOAD_V2);
        ch.off(
            "NDIS_TCP_LARGE_SEND_OFFLOAD_V2",
            "IPv6",
            offset_of!(NDIS_TCP_LARGE_SEND_OFFLOAD_V2, IPv6Encapsulation),
        );
        size!(ch, NDIS_IPSEC_OFFLOAD_V2);
        off!(
            ch,
            NDIS_IPSEC_OFFLOAD_V2,
            UdpEsp,
            AuthenticationAlgorithms,
            EncryptionAlgorithms,
            SaOffloadCapacity
        );
        size!(ch, NDIS_TCP_RECV_SEG_COALESCE_OFFLOAD);
        size!(ch, NDIS_ENCAPSULATED_PACKET_TASK_OFFLOAD);
        // mingw's NDIS_OFFLOAD stops at revision 3 (NDIS 6.30): compare that prefix.
        off!(
            ch,
            NDIS_OFFLOAD,
            Checksum,
            LsoV1,
            IPsecV1,
            LsoV2,
            Flags,
            IPsecV2,
            Rsc,
            EncapsulatedPacketTaskOffloadGre
        );
        ch.raw(
            "sizeof(NDIS_OFFLOAD)",
            &NDIS_SIZEOF_NDIS_OFFLOAD_REVISION_3.to_string(),
            "NDIS_OFFLOAD revision 3 size",
        );
        off!(
            ch,
            NDIS_OFFLOAD_PARAMETERS,
            IPv4Checksum,
            TCPIPv4Checksum,
            UDPIPv4Checksum,
            TCPIPv6Checksum,
            UDPIPv6Checksum
        );
        off!(
            ch,
            NDIS_OFFLOAD_PARAMETERS,
            LsoV1,
            IPsecV1,
            LsoV2IPv4,
            LsoV2IPv6,
            TcpConnectionIPv4,
            TcpConnectionIPv6,
            Flags
        );
        off!(
            ch,
            NDIS_OFFLOAD_PARAMETERS,
            IPsecV2,
            IPsecV2IPv4,
            RscIPv4,
            RscIPv6,
            EncapsulatedPacketTaskOffload,
            EncapsulationTypes
        );
        konst!(
            ch,
            OID_GEN_CURRENT_PACKET_FILTER,
            OID_GEN_MAXIMUM_FRAME_SIZE,
            OID_GEN_LINK_STATE,
            OID_802_3_CURRENT_ADDRESS,
            OID_PNP_SET_POWER,
            OID_TCP_OFFLOAD_CURRENT_CONFIG,
            OID_TCP_OFFLOAD_PARAMETERS,
            OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES,
            OID_OFFLOAD_ENCAPSULATION,
            NDIS_OBJECT_TYPE_DEFAULT,
            NDIS_OBJECT_TYPE_DEVICE_OBJECT_ATTRIBUTES,
            NDIS_OBJECT_TYPE_FILTER_DRIVER_CHARACTERISTICS,
            NDIS_OBJECT_TYPE_FILTER_ATTRIBUTES,
            NDIS_OBJECT_TYPE_STATUS_INDICATION,
            NDIS_OBJECT_TYPE_FILTER_ATTACH_PARAMETERS,
            NDIS_OBJECT_TYPE_FILTER_PAUSE_PARAMETERS,
            NDIS_OBJECT_TYPE_FILTER_RESTART_PARAMETERS,
            NDIS_OBJECT_TYPE_OFFLOAD,
        );
        size!(ch, SOCKADDR_IN);
        size!(ch, SOCKADDR_IN6);
        off!(ch, SOCKADDR_IN6, sin6_port, sin6_flowinfo, sin6_addr, sin6_scope_id);
        size!(ch, SOCKADDR_INET);
        size!(ch, SOCKADDR_STORAGE);
        size!(ch, CMSGHDR, "WSACMSGHDR");
        ch.off("WSACMSGHDR", "cmsg_level", offset_of!(CMSGHDR, cmsg_level));
        ch.off("WSACMSGHDR", "cmsg_type", offset_of!(CMSGHDR, cmsg_type));
        konst!(ch, AF_INET6, IPV6_PKTINFO, IP_PKTINFO);
        ch.constant("SO_EXCLUSIVEADDRUSE", SO_EXCLUSIVEADDRUSE.cast_signed().wide());
        let prelude = "#include <winsock2.h>\n#include <ws2ipdef.h>\n#include <mswsock.h>\n#include <ntddndis.h>\n#include <stddef.h>\n"
            .to_owned();
        (prelude, ch)
    }
}

#[test]
fn rust_layouts_match_mingw_headers() {
    let Some(env) = mingw::prerequisites() else { return };
    let mut total = 0;
    let (kprelude, kchecks) = mingw::kernel_checks();
    let (uprelude, uchecks) = mingw::user_checks();
    for (target, prelude, checks) in [
        ("x86_64-w64-mingw32", &kprelude, &kchecks),
        ("x86_64-w64-mingw32", &uprelude, &uchecks),
        ("aarch64-w64-mingw32", &uprelude, &uchecks),
    ] {
        let source = format!("{prelude}\n{}", checks.c);
        let out = mingw::compile(&env, target, &source, "mingw_layout");
        assert!(
            out.status.success(),
            "Rust layout differs from mingw-w64's headers for {target}:\n{}\n--- generated C ---\n{source}",
            String::from_utf8_lossy(&out.stderr)
        );
        total += checks.count;
    }
    eprintln!("mingw layout: {total} static assertions passed (x64 kernel + x64/ARM64 user-mode)");
}

/// The clang/mingw harness must be able to fail too.
#[test]
fn mingw_harness_detects_a_mismatch() {
    let Some(env) = mingw::prerequisites() else { return };
    let mut checks = Checks::new();
    checks.size("NDIS_OBJECT_HEADER", size_of::<NDIS_OBJECT_HEADER>() + 4);
    let source = format!("#include <winsock2.h>\n#include <ntddndis.h>\n{}", checks.c);
    let out = mingw::compile(&env, "aarch64-w64-mingw32", &source, "mingw_layout_negative");
    assert!(
        !out.status.success(),
        "a wrong NDIS_OBJECT_HEADER size compiled; the clang harness checks nothing"
    );
}
