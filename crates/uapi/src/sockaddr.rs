//! Windows socket address layouts (`ws2def.h`, `ws2ipdef.h`) as bytes.
//!
//! * `SOCKADDR_IN` (16 bytes): `sin_family` u16 LE at 0, `sin_port` at 2 (network order), `sin_addr` at 4,
//!   `sin_zero[8]` at 8.
//! * `SOCKADDR_IN6` (28 bytes): `sin6_family` u16 LE at 0, `sin6_port` at 2 (network order),
//!   `sin6_flowinfo` u32 at 4, `sin6_addr` at 8, `sin6_scope_id` u32 at 24. The flow info and scope id are
//!   stored as the native (little-endian) integers, the way Rust's std converts `SocketAddrV6` on Windows.
//! * The unions `{ SOCKADDR_IN Addr4; SOCKADDR_IN6 Addr6; }` of ovpn-dco.h are 28 bytes, 4-aligned
//!   ([`SOCKADDR_INET_SIZE`]); `struct sockaddr_storage` is 128 bytes, 8-aligned.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::wire::{bytes, prep_out, put, put_u16, put_u32, u16_at, u32_at};
use crate::UapiError;

/// `AF_UNSPEC`.
pub const AF_UNSPEC: u16 = 0;
/// `AF_INET`.
pub const AF_INET: u16 = 2;
/// `AF_INET6` on Windows (23, not Linux's 10).
pub const AF_INET6: u16 = 23;
/// `sizeof(SOCKADDR_IN)`.
pub const SOCKADDR_IN_SIZE: usize = 16;
/// `sizeof(SOCKADDR_IN6)`.
pub const SOCKADDR_IN6_SIZE: usize = 28;
/// Size of the `union { SOCKADDR_IN; SOCKADDR_IN6; }` used throughout ovpn-dco.h.
pub const SOCKADDR_INET_SIZE: usize = 28;
/// `sizeof(SOCKADDR_STORAGE)`.
pub const SOCKADDR_STORAGE_SIZE: usize = 128;

/// The size of the Windows structure that holds `addr`.
pub const fn encoded_len(addr: &SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(_) => SOCKADDR_IN_SIZE,
        SocketAddr::V6(_) => SOCKADDR_IN6_SIZE,
    }
}

/// Parses a `SOCKADDR_IN` or `SOCKADDR_IN6` at the start of `buf`, chosen by its family.
///
/// `field` names the field in errors. The buffer must hold the whole structure of that family.
pub fn parse(buf: &[u8], field: &'static str) -> Result<SocketAddr, UapiError> {
    let family = match buf.get(..2) {
        Some(_) => u16_at(buf, 0),
        None => return Err(UapiError::TooShort { need: SOCKADDR_IN_SIZE, got: buf.len() }),
    };
    match family {
        AF_INET => {
            crate::wire::check_in(buf, SOCKADDR_IN_SIZE)?;
            let port = u16::from_be_bytes(bytes(buf, 2));
            let ip = Ipv4Addr::from(bytes::<4>(buf, 4));
            Ok(SocketAddr::V4(SocketAddrV4::new(ip, port)))
        }
        AF_INET6 => {
            crate::wire::check_in(buf, SOCKADDR_IN6_SIZE)?;
            let port = u16::from_be_bytes(bytes(buf, 2));
            let flowinfo = u32_at(buf, 4);
            let ip = Ipv6Addr::from(bytes::<16>(buf, 8));
            let scope_id = u32_at(buf, 24);
            Ok(SocketAddr::V6(SocketAddrV6::new(ip, port, flowinfo, scope_id)))
        }
        other => Err(UapiError::bad(field, other)),
    }
}

/// Like [`parse`], but a family of `AF_UNSPEC` (all zero, as in an event without an address) gives `None`.
pub fn parse_optional(buf: &[u8], field: &'static str) -> Result<Option<SocketAddr>, UapiError> {
    if buf.len() >= 2 && u16_at(buf, 0) == AF_UNSPEC {
        return Ok(None);
    }
    parse(buf, field).map(Some)
}

/// Writes `addr` as `SOCKADDR_IN` or `SOCKADDR_IN6` at the start of `out`; returns the bytes written.
pub fn write(addr: &SocketAddr, out: &mut [u8]) -> Result<usize, UapiError> {
    let len = encoded_len(addr);
    prep_out(out, len)?;
    match addr {
        SocketAddr::V4(a) => {
            put_u16(out, 0, AF_INET);
            put(out, 2, &a.port().to_be_bytes());
            put(out, 4, &a.ip().octets());
        }
        SocketAddr::V6(a) => {
            put_u16(out, 0, AF_INET6);
            put(out, 2, &a.port().to_be_bytes());
            put_u32(out, 4, a.flowinfo());
            put(out, 8, &a.ip().octets());
            put_u32(out, 24, a.scope_id());
        }
    }
    Ok(len)
}

/// Parses an IP address stored as a bare `IN_ADDR` (4 bytes) or `IN6_ADDR` (16 bytes).
pub(crate) fn ip_at(buf: &[u8], off: usize, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(bytes::<16>(buf, off)))
    } else {
        IpAddr::V4(Ipv4Addr::from(bytes::<4>(buf, off)))
    }
}

/// Splits a control packet of multipeer mode into the peer's address and the packet.
///
/// In `OVPN_MODE_MP` every control packet written to or read from the device is prefixed with the remote
/// peer's `SOCKADDR_IN` or `SOCKADDR_IN6` (ovpn-dco-win `Driver.cpp`, write path). As there, the packet after
/// the address must not be empty.
pub fn split_prefixed(buf: &[u8]) -> Result<(SocketAddr, &[u8]), UapiError> {
    let addr = parse(buf, "sa_family")?;
    let len = encoded_len(&addr);
    match buf.get(len..) {
        Some(rest) if !rest.is_empty() => Ok((addr, rest)),
        _ => Err(UapiError::TooShort { need: len + 1, got: buf.len() }),
    }
}

/// Writes `addr` followed by `packet` (the multipeer control-packet framing); returns the bytes written.
pub fn write_prefixed(addr: &SocketAddr, packet: &[u8], out: &mut [u8]) -> Result<usize, UapiError> {
    let len = encoded_len(addr);
    let total = len.saturating_add(packet.len());
    if out.len() < total {
        return Err(UapiError::BufferTooSmall { need: total, got: out.len() });
    }
    write(addr, out)?;
    put(out, len, packet);
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_layout() {
        let a: SocketAddr = "192.0.2.1:1194".parse().unwrap();
        let mut b = [0xAAu8; 16];
        assert_eq!(write(&a, &mut b), Ok(16));
        assert_eq!(b, [2, 0, 0x04, 0xAA, 192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(parse(&b, "x"), Ok(a));
    }

    #[test]
    fn v6_layout() {
        let a = SocketAddr::V6(SocketAddrV6::new("2001:db8::1".parse().unwrap(), 443, 7, 3));
        let mut b = [0u8; 28];
        assert_eq!(write(&a, &mut b), Ok(28));
        assert_eq!(&b[..8], &[23, 0, 0x01, 0xBB, 7, 0, 0, 0]);
        assert_eq!(&b[8..10], &[0x20, 0x01]);
        assert_eq!(&b[24..], &[3, 0, 0, 0]);
        assert_eq!(parse(&b, "x"), Ok(a));
        for n in 0..28 {
            assert!(parse(&b[..n], "x").is_err());
        }
    }

    #[test]
    fn bad_family_and_prefix() {
        assert_eq!(
            parse(&[10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "F"),
            Err(UapiError::bad("F", 10u16))
        );
        let a: SocketAddr = "10.0.0.1:5".parse().unwrap();
        let mut buf = [0u8; 20];
        assert_eq!(write_prefixed(&a, b"abcd", &mut buf), Ok(20));
        assert_eq!(split_prefixed(&buf), Ok((a, &b"abcd"[..])));
        assert!(split_prefixed(&buf[..16]).is_err());
        assert!(write_prefixed(&a, b"abcde", &mut buf).is_err());
    }
}
