//! The verifier: every rule the simulated kernel enforces, by name, and the record of violations.
//!
//! Real Driver Verifier stops the machine with a bug check on a violation. The simulation records the
//! violation (rule, detail), refuses the offending operation where carrying it out would corrupt the
//! simulation (a double free is not performed), and lets the test finish so it can assert on exactly which
//! rules fired. A test that expects no violations fails on the first one recorded.
use std::fmt;
use std::sync::Mutex;

macro_rules! rules {
    ($($variant:ident => $name:literal, $why:literal;)*) => {
        /// A verifier rule. Each has a stable name (used in reports and by negative tests) and the
        /// Windows behaviour it models.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Rule { $($variant),* }

        impl Rule {
            /// Every rule, in declaration order.
            pub const ALL: &'static [Rule] = &[$(Rule::$variant),*];

            /// The rule's stable name.
            pub fn name(self) -> &'static str {
                match self { $(Rule::$variant => $name),* }
            }

            /// What the rule models, with its source.
            pub fn description(self) -> &'static str {
                match self { $(Rule::$variant => $why),* }
            }

            /// Looks a rule up by its name.
            pub fn from_name(name: &str) -> Option<Rule> {
                Rule::ALL.iter().copied().find(|r| r.name() == name)
            }
        }
    };
}

rules! {
    PoolTagRequired => "pool.tag_required",
        "ExAllocatePool2 requires a nonzero tag of printable ASCII (ExAllocatePool2 docs); Driver Verifier flags untagged pool";
    PoolFreeUnknown => "pool.free_unknown",
        "Freeing memory that is not a live pool block, e.g. a double free (bug check 0xC2 BAD_POOL_CALLER param 0x07)";
    PoolFreeWrongTag => "pool.free_wrong_tag",
        "ExFreePoolWithTag with a tag other than the allocation's (bug check 0xC2 BAD_POOL_CALLER param 0x0A)";
    PoolLeakAtUnload => "pool.leak_at_unload",
        "A driver unloads without freeing its pool allocations (bug check 0xC4 param 0x62)";
    SpinLockNotHeld => "spinlock.release_not_held",
        "Releasing a spin lock that is not held (bug check 0xC4 param 0x31 family: spin lock misuse)";
    SpinLockRecursive => "spinlock.recursive",
        "Acquiring a spin lock the same thread already holds: a deadlock on real hardware (Driver Verifier deadlock detection, bug check 0xC4 param 0x1001)";
    SpinLockDpcLevel => "spinlock.at_dpc_level_irql",
        "KeAcquireSpinLockAtDpcLevel/KeReleaseSpinLockFromDpcLevel called below DISPATCH_LEVEL (bug check 0xC4 param 0x3B family)";
    SpinLockHeldOnReturn => "spinlock.held_on_return",
        "A callback returns to the OS still holding a spin lock it acquired";
    IrqlNotRestored => "irql.not_restored",
        "A callback returns at an IRQL other than the one it was called at (bug check 0xC4 param 0x0D family / IRQL_UNEXPECTED_VALUE 0xC8)";
    IrqlTooHigh => "irql.too_high",
        "A routine called above its maximum IRQL (the routine's documented IRQL requirement)";
    IrqlFlagMismatch => "irql.flag_mismatch",
        "A DISPATCH_LEVEL flag passed to NDIS that does not match the real IRQL (NDIS_SEND_FLAGS_DISPATCH_LEVEL / NDIS_RETURN_FLAGS_DISPATCH_LEVEL docs)";
    BugCheck => "kernel.bugcheck",
        "The driver called KeBugCheckEx (a Rust panic in a driver ends here)";
    NdisStillRegistered => "ndis.still_registered_at_unload",
        "A filter driver unloads without NdisFDeregisterFilterDriver (NDIS keeps calling into unloaded code)";
    NdisBadHandle => "ndis.bad_handle",
        "An NDIS call with a handle NDIS never gave out or already took back";
    NdisFilterState => "ndis.filter_state",
        "A filter call or return that the module's state does not allow (Filter Module States and Operations)";
    WdfStillBound => "wdf.binding",
        "KMDF binding misuse: unload without WdfVersionUnbind, unbind without bind, DDIs with foreign globals";
    NdisSendOwnership => "ndis.send_ownership",
        "A filter sends or completes an NBL it does not hold (Filter Module Send and Receive Operations: ownership passes with the call)";
    NdisSourceHandle => "ndis.source_handle",
        "A filter-originated send without its NdisFilterHandle in SourceHandle, or SourceHandle changed on an NBL the filter did not originate (NET_BUFFER_LIST.SourceHandle)";
    NdisCompleteOwn => "ndis.complete_own_nbl",
        "A filter completes an NBL it originated up the stack instead of reclaiming it in FilterSendNetBufferListsComplete";
    NdisSendWhilePaused => "ndis.send_while_paused",
        "NdisFSendNetBufferLists from a Paused module (Pausing a Filter Module: originate no new sends)";
    NdisReceiveOwnership => "ndis.receive_ownership",
        "A filter indicates or returns an NBL it does not hold, miscounts NumberOfNetBufferLists, or indicates a RESOURCES NBL up without the flag";
    NdisReceiveWhilePaused => "ndis.receive_while_paused",
        "NdisFIndicateReceiveNetBufferLists from a Paused module (Pausing a Filter Module: originate no new receive indications)";
    NdisReturnResources => "ndis.return_resources",
        "NdisFReturnNetBufferLists on an NBL indicated with NDIS_RECEIVE_FLAGS_RESOURCES (NdisFReturnNetBufferLists remarks: those return by returning from FilterReceiveNetBufferLists)";
    NdisReturnOwn => "ndis.return_own_nbl",
        "A filter returns an NBL it originated down the stack instead of reclaiming it in FilterReturnNetBufferLists";
    NdisResourcesChain => "ndis.resources_chain",
        "FilterReceiveNetBufferLists returns from a RESOURCES indication without restoring the original NBL chain (Receiving Data in Protocol Drivers / filter equivalent)";
    NdisPauseOutstanding => "ndis.pause_outstanding",
        "A pause completes while the module still holds or is owed NBLs (Pausing a Filter Module: the pause is not complete until they come back)";
    OidForwardOriginal => "oid.forward_original",
        "A filter forwards the OID request NDIS gave it instead of a clone (Filter Module OID Requests: clone with NdisAllocateCloneOidRequest)";
    OidCompleteTwice => "oid.complete_twice",
        "An OID request completed twice, completed by a filter it was not given to, or a clone freed twice";
    OidCompletePending => "oid.complete_pending",
        "NdisFOidRequestComplete with NDIS_STATUS_PENDING";
    OidTimeout => "oid.timeout",
        "An OID request not completed within 12 seconds (the NDIS OID timeout Driver Verifier enforces)";
    OidCloneLeak => "oid.clone_leak",
        "A filter unloads still holding cloned OID requests";
    NdisPauseTimeout => "ndis.pause_timeout",
        "A pended pause not completed within 10 seconds of machine time (NDIS's stack-pause watchdog)";
    NdisTimedDataSend => "ndis.timed_data_send",
        "A filter holds a send NBL longer than 30 s of machine time (Driver Verifier NdisTimedDataSend, bug check 0xC4 / 0x9200D)";
    NdisTimedDataReceive => "ndis.timed_data_receive",
        "A filter holds a receive NBL longer than 30 s of machine time (Driver Verifier NdisFilterTimedDataReceive, bug check 0xC4 / 0x92012)";
    NotSimulated => "sim.not_simulated",
        "The driver called a kernel function the simulation does not implement (a gap in the simulation, never a pass)";
    NblDoubleFree => "nbl.double_free",
        "NdisFreeNetBufferList/NdisFreeNetBuffer/NdisFreeCloneNetBufferList on a structure that is not live (freed twice, or never allocated from an NDIS pool) or that another driver's pool owns (NdisFreeNetBufferList docs: only NBLs allocated with NdisAllocateNetBufferList/NdisAllocateNetBufferAndNetBufferList; NdisFreeNetBuffer: only NBs from NdisAllocateNetBuffer, never an NBL's preallocated NB)";
    NblFreeWithChildren => "nbl.free_with_children",
        "Freeing a NET_BUFFER_LIST whose ChildRefCount is nonzero: its clones still reference its NET_BUFFERs and MDLs (NET_BUFFER_LIST ChildRefCount; Derived NET_BUFFER_LIST Structures: the original may be freed only after every clone is freed)";
    NblCloneFreeMismatch => "nbl.clone_free_mismatch",
        "NdisFreeCloneNetBufferList on an NBL that NdisAllocateCloneNetBufferList did not allocate, or with FreeCloneFlags other than the AllocateCloneFlags; or NdisFreeNetBufferList on a clone (NdisFreeCloneNetBufferList docs: the caller must specify the same flags)";
    NblPoolLeak => "nbl.pool_leak",
        "NdisFreeNetBufferListPool/NdisFreeNetBufferPool while structures from the pool are outstanding (NdisFreeNetBufferListPool docs: free every NBL first), or a driver unloading with NBL/NB pools or NBLs outstanding (bug check 0x7C BUGCODE_NDIS_DRIVER param 1 0x27 NDIS_BUGCHECK_LEAKED_NBL, param 2 0x01: drivers must not deregister or unbind while they hold NBLs)";
    NblRetreatAdvance => "nbl.retreat_advance",
        "NdisAdvanceNetBufferDataStart past the end of the used data (DataOffsetDelta > DataLength), or freeing a retreat-allocated MDL through a mechanism other than the one that allocated it (Retreat/Advance Operations docs: MDLs must be freed by the reciprocal of the NetAllocateMdl mechanism)";
    NbRange => "nb.range",
        "A NET_BUFFER whose DataOffset + DataLength lies beyond its MDL chain, a copy offset outside a NET_BUFFER's used data, or NdisFreeNetBufferListContext of more context than is in use (NdisAllocateNetBuffer / NdisCopyFromNetBufferToNetBuffer / NdisFreeNetBufferListContext docs)";
    MdlBadFree => "mdl.bad_free",
        "Freeing an MDL that is not live (double free) or through the wrong routine: IoFreeMdl only for IoAllocateMdl MDLs, NdisFreeMdl only for NdisAllocateMdl MDLs, NDIS-owned MDLs never (IoFreeMdl / NdisFreeMdl docs; bug check 0xC2 BAD_POOL_CALLER on a double free)";
    WskReleaseUnknown => "wsk.release_unknown",
        "WskRelease of a WSK_DATAGRAM_INDICATION the client does not hold: never indicated, not retained (the event callback returned STATUS_SUCCESS, so the provider already took it back), or released twice (PFN_WSK_RELEASE_DATAGRAM_INDICATION_LIST docs: only lists retained by returning STATUS_PENDING from WskReceiveFromEvent)";
    WskIrpCompletedTwice => "wsk.irp_completed_twice",
        "IoCompleteRequest on an IRP that is not being processed: completed twice, or completed by the client that owns it (bug check 0x44 MULTIPLE_IRP_COMPLETE_REQUESTS)";
    WskIrpMisuse => "wsk.irp_misuse",
        "IRP and call misuse around WSK (Using IRPs with Winsock Kernel Functions): passing an IRP that is still in flight, or a completed one again without IoReuseIrp; an IoAllocateIrp IRP without a completion routine invoked on success, error and cancel, or whose routine does not return STATUS_MORE_PROCESSING_REQUIRED; freeing or reusing an IRP the provider holds, freeing an IRP twice; an IRP without a stack location left; a WSK call on a socket that is closed or was never created; WskReleaseProviderNPI/WskDeregister without a capture/registration (Driver Verifier I/O verification, bug check 0xC9)";
    WskSocketLeak => "wsk.socket_leak_at_unload",
        "A WSK client unloads (or calls WskDeregister) with sockets open, provider NPIs captured or datagram indications retained: WskDeregister blocks until all are closed/released, and unloaded code would be called back (WskDeregister docs)";
    WskDispatchIrql => "wsk.dispatch_irql",
        "A WSK provider dispatch routine called above its documented IRQL (<= DISPATCH_LEVEL for WskSendTo/WskSendMessages/WskRelease/WskCloseSocket; PASSIVE_LEVEL for WskSocket and WskControlSocket with SO_WSK_EVENT_CALLBACK is recommended, <= DISPATCH_LEVEL allowed)";
    WskCloseWithRetained => "wsk.close_with_retained",
        "WskCloseSocket while datagram indications of the socket are still retained (PFN_WSK_RELEASE_DATAGRAM_INDICATION_LIST remarks: closing does not release them; release every retained list before WskCloseSocket)";
    SchedPendingAtUnload => "sched.dpc_pending_at_unload",
        "A driver unloads with a DPC it queued still queued, a timer it set still set, or a work item it queued not yet run: the kernel would call unloaded code (bug check 0xCE DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS; KeCancelTimer/KeRemoveQueueDpc/KeFlushQueuedDpcs before unload)";
    SchedWorkItemFreedWhileQueued => "sched.workitem_freed_while_queued",
        "IoFreeWorkItem/IoUninitializeWorkItem on a work item that is still queued (IoFreeWorkItem docs: only free a work item that is not currently queued), or other work-item misuse: queueing it again before it ran, freeing an item IoAllocateWorkItem did not allocate, or mixing the Allocate/Free and Initialize/Uninitialize pairs";
    SchedWaitAtDispatch => "sched.wait_at_dispatch",
        "KeWaitForSingleObject with a nonzero or infinite timeout, or KeDelayExecutionThread, at DISPATCH_LEVEL (KeWaitForSingleObject docs; SDV rule IrqlKeWaitForMultipleObjects: only a zero timeout is allowed at DISPATCH_LEVEL)";
    SchedWaitDeadlock => "sched.wait_deadlock",
        "An infinite wait in deterministic mode that nothing queued, set or running can ever satisfy: on Windows the thread hangs forever (the wait returns STATUS_TIMEOUT in the simulation)";
    XStateUnbalanced => "xstate.unbalanced",
        "KeRestoreExtendedProcessorState without a matching KeSaveExtendedProcessorState on the same thread, out of LIFO order, at another IRQL than the save, a nested save at a lower IRQL, or a callback returning with a save outstanding (KeRestoreExtendedProcessorState remarks: same thread, same IRQL, properly nested)";
    DeviceNotDeregistered => "device.not_deregistered",
        "A driver unloads with a control device it registered with NdisRegisterDeviceEx still registered (NdisDeregisterDeviceEx docs: a filter deregisters its device in FilterUnload; the I/O manager would dispatch IRPs into unloaded code)";
    DeviceIrpPendingAtUnload => "device.irp_pending_at_unload",
        "A driver unloads while an IRP sent to its device is still pending: it must complete or cancel pending IRPs at IRP_MJ_CLEANUP and before unload (bug check 0xCE DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS)";
    DeviceIrpMisuse => "device.irp_misuse",
        "IRP dispatch misuse (Driver Verifier I/O verification, bug check 0xC9 DRIVER_VERIFIER_IOMANAGER_VIOLATION; IoMarkIrpPending / IoCompleteRequest docs): a dispatch routine returning a status other than STATUS_PENDING without completing the IRP, returning STATUS_PENDING without IoMarkIrpPending, returning a status other than the one it completed with, completing with STATUS_PENDING, completing twice, or IoStatus.Information beyond the buffered output buffer";
    OffloadNotAdvertised => "offload.not_advertised",
        "A send reaches the miniport carrying offload metadata it did not advertise in its NDIS_OFFLOAD (OID_TCP_OFFLOAD_CURRENT_CONFIG / NDIS_STATUS_TASK_OFFLOAD_CURRENT_CONFIG): checksum offload for an IP version without it, LSOv1, LSOv2 or USO when not offered, a super-packet beyond MaxOffLoadSize or with fewer than MinSegmentCount segments, more than one NET_BUFFER, or a header offset that is not the TCP/UDP header (Offloading the Segmentation of Large TCP Packets; UDP Segmentation Offload: the transport offloads only what the miniport reported)";
    NetcxRingImmutable => "netcx.ring.immutable",
        "A NetAdapterCx client wrote a NET_RING header field other than BeginIndex, NextIndex and Scratch (Network-Adapter-Class-Extension netcx/adapter/verifier.cpp Verifier_VerifyRingImmutable, FailureCode_InvalidRingImmutable; NET_RING docs: the client owns only those three)";
    NetcxRingBeginPastEnd => "netcx.ring.begin_past_end",
        "A client's EvtPacketQueueAdvance moved BeginIndex backwards or past EndIndex (verifier.cpp Verifier_VerifyRingBeginIndex, FailureCode_InvalidRingBeginIndex)";
    NetcxRingOutsideRange => "netcx.ring.outside_range",
        "A client changed a ring element outside the range [BeginIndex, EndIndex) it owns (verifier.cpp Verifier_VerifyRingImmutableFrameworkElements, FailureCode_InvalidRingImmutableFrameworkElement)";
    NetcxTxImmutable => "netcx.tx.immutable",
        "A client changed a Tx NET_PACKET or NET_FRAGMENT field other than Scratch, Ignore included (verifier.cpp Verifier_VerifyRingImmutableDriverTxPackets/Fragments, FailureCode_InvalidRingImmutableDriverTxPacket/Fragment)";
    NetcxRxPacketFragments => "netcx.rx.packet_fragments",
        "A returned Rx NET_PACKET with FragmentCount 0 or beyond the fragments the client held, FragmentIndex/FragmentCount outside the fragments it returned in the same advance, fragments not ascending or overlapping the previous packet's, or an ignored packet whose fields were written (verifier.cpp VerifyPacketFields, FailureCode_InvalidRingRxPacketFragment*, FailureCode_InvalidRingImmutableDriverRxPacketIgnore, FailureCode_InvalidRingUnmodifiedRxPacket)";
    NetcxRxLayout => "netcx.rx.layout",
        "A returned Rx NET_PACKET whose Layout is invalid: a layer type out of its enumeration, a Null layer 2 with a header length, an Ethernet header length below 14, IPv4 below 20, IPv6 below 40, TCP outside 20..60 or not a multiple of 4, UDP below 8 (verifier.cpp VerifyPacketFields, FailureCode_InvalidRingRxPacketLayer*)";
    NetcxRxFragment => "netcx.rx.fragment",
        "A returned Rx NET_FRAGMENT whose ValidLength/Offset (and Capacity with driver attachment) were not written, whose Capacity changed under system attachment, or whose Offset + ValidLength exceeds Capacity (verifier.cpp VerifyPacketFragmentsRx, FailureCode_InvalidRingUnmodifiedRxFragment/ModifiedRxFragment/RxPacketFragmentLengthInvalid)";
    NetcxRxReserved => "netcx.rx.os_reserved",
        "A client changed OsReserved_Bounced of an Rx fragment or the Reserved bits of an Rx packet's Layout or flags (verifier.cpp FailureCode_InvalidRingModifiedRxPacket/ModifiedRxFragment)";
    NetcxCancel => "netcx.cancel",
        "After EvtPacketQueueCancel a client returned an Rx packet without Ignore, or did not drain both rings (BeginIndex == EndIndex for packets and fragments) within the framework's drain budget (EVT_PACKET_QUEUE_CANCEL docs: return all packets and fragments; Rx packets marked Ignore)";
    NetcxNotify => "netcx.notify",
        "NetRxQueueNotifyMoreReceivedPacketsAvailable/NetTxQueueNotifyMoreCompletedPacketsAvailable while the framework has notification disabled, or on a queue that is not running (EVT_PACKET_QUEUE_SET_NOTIFICATION_ENABLED docs: notify once after notification is enabled)";
    NetcxCapabilities => "netcx.capabilities",
        "Invalid adapter capabilities: a structure Size that is not the header's, driver-managed Rx allocation without driver attachment or without EvtAdapterReturnRxBuffer, zero MTU, or NetAdapterStart without data-path capabilities or datapath callbacks (verifier.cpp Verifier_VerifyAdapterRxCapabilities/TxCapabilities, FailureCode_InvalidAdapterRxCapabilities, FailureCode_MtuMustBeGreaterThanZero, FailureCode_InvalidStructTypeSize)";
    NetcxObjectState => "netcx.object_state",
        "A NetAdapterCx object misused: an unknown or deleted handle, NetAdapterStart twice, a NETADAPTER_INIT used twice or freed twice, a queue created twice or outside its create callback, a DDI at the wrong point of the object's life (verifier.cpp FailureCode_AdapterAlreadyStarted, FailureCode_NetAdapterInitAlreadyUsed, FailureCode_QueueAlreadyCreated, FailureCode_BadQueueInitContext, FailureCode_InvalidQueueHandle)";
    WdfRequestCompletedTwice => "wdf.request_completed_twice",
        "WdfRequestComplete on a request already completed (KMDF verifier: bug check 0x10D WDF_VIOLATION, request fatal error; DDI compliance rule DoubleCompletion)";
    WdfRequestAfterCompletion => "wdf.request_after_completion",
        "A request DDI (buffers, information, forward, file object) on a completed request (DDI compliance rules BufAfterReqCompleted*, InvalidReqAccess)";
    WdfRequestNotOwned => "wdf.request_not_owned",
        "Completing, forwarding or using a request a queue holds (the framework owns it until WdfIoQueueRetrieveNextRequest), or forwarding to another device's queue (WdfRequestForwardToIoQueue docs: same device)";
    WdfRequestInformationOverflow => "wdf.request_information_overflow",
        "A read or IOCTL completed with Information larger than its output buffer (KMDF verifier WDF_REQUEST_FATAL_ERROR_INFORMATION_LENGTH_MISMATCH)";
    WdfRequestLeaked => "wdf.request_leaked",
        "A request the driver owns is never completed: still outstanding when its device is removed (KMDF verifier: outstanding requests at remove; DDI compliance rule ReqNotCanceled family)";
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One recorded violation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub rule: Rule,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule, self.detail)
    }
}

static VIOLATIONS: Mutex<Vec<Violation>> = Mutex::new(Vec::new());

/// Records a violation of `rule`.
pub fn violation(rule: Rule, detail: impl Into<String>) {
    let v = Violation { rule, detail: detail.into() };
    if std::env::var_os("WINSIM_VERBOSE").is_some() {
        eprintln!("winsim verifier: {v}");
    }
    crate::lock(&VIOLATIONS).push(v);
}

/// Takes every violation recorded so far.
pub fn take() -> Vec<Violation> {
    std::mem::take(&mut *crate::lock(&VIOLATIONS))
}
