//! The NetAdapterCx bit-field accessors and ring helpers of `kernel::ffi::netcx` against the header
//! layouts (MSVC packs bit-fields from the least significant bit of their storage unit).
#![allow(non_snake_case)]
use kernel::ffi::netcx::*;

#[test]
fn fragment_bitfields_pack_from_the_low_bit() {
    let mut f = NET_FRAGMENT::default();
    f.set_valid_length(0x3ff_ffff);
    assert_eq!(f.Bits, 0x3ff_ffff);
    f.set_capacity(1);
    assert_eq!(f.Bits >> 26 & 0x3ff_ffff, 1);
    f.set_offset(0x3ff);
    assert_eq!(f.Bits >> 52 & 0x3ff, 0x3ff);
    f.set_scratch(true);
    f.set_bounced(true);
    assert_eq!(f.Bits >> 62, 0b11);
    assert_eq!((f.valid_length(), f.capacity(), f.offset()), (0x3ff_ffff, 1, 0x3ff));
    f.set_valid_length(1 << 26); // masked to the field's width
    assert_eq!(f.valid_length(), 0);
    assert_eq!(f.capacity(), 1);
}

#[test]
fn packet_layout_bitfields() {
    let l = NET_PACKET_LAYOUT::new(
        14,
        20,
        8,
        NetPacketLayer2TypeEthernet,
        NetPacketLayer3TypeIPv4NoOptions,
        NetPacketLayer4TypeUdp,
    );
    // Layer2HeaderLength:7 | Layer3HeaderLength:9 in one UINT16: 14 | 20 << 7 = 0x0a0e.
    assert_eq!(l.Bits, [0x0e, 0x0a, 8, 0x32, 0x02]);
    assert_eq!((l.layer2_header_length(), l.layer3_header_length(), l.layer4_header_length()), (14, 20, 8));
    assert_eq!((l.layer2_type(), l.layer3_type(), l.layer4_type(), l.reserved0()), (2, 3, 2, 0));
    let mut p = NET_PACKET { Layout: l, ..NET_PACKET::default() };
    p.set_ignore(true);
    assert!(p.ignore() && !p.scratch() && p.Flags == 1);
}

#[test]
fn ring_index_helpers() {
    // SAFETY: plain data; zero is a valid header.
    let mut r: NET_RING = unsafe { core::mem::zeroed() };
    r.NumberOfElements = 8;
    r.ElementIndexMask = 7;
    assert_eq!(NetRingGetRangeCount(&r, 1, 4), 3);
    assert_eq!(NetRingGetRangeCount(&r, 4, 1), 5);
    assert_eq!(NetRingGetRangeCount(&r, 7, 7), 0);
    assert_eq!(NetRingIncrementIndex(&r, 7), 0);
    assert_eq!(NetRingAdvanceIndex(&r, 1, -2), 7);
}
