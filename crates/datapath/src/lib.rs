//! The rdco data-channel engine (see `shared/design.md`).
//!
//! An OpenVPN-compatible `P_DATA_V2` data path that both drivers share. The engine does no I/O and
//! reads no clock: callers pass the current [`time::Instant`] and their own buffers, and every call
//! returns what happened (an outcome, an event, or a small error enum). It allocates only at
//! configuration time (peer table and route table growth, epoch key state); the per-packet paths
//! ([`peer::Peer::seal`], [`peer::Peer::open`] and the [`peer::PeerTable`] equivalents) never do.
//!
//! Layout of the crate, one module per layer:
//! - [`wire`]: the `P_DATA_V2` header wrapper, data/control classification, packet layouts.
//! - [`crypto`]: the [`crypto::Aead`] backend trait, the [`crypto::Cipher`] enum, the `RustCrypto`
//!   backend (default, zero-copy) and the `ring` backend (feature `ring`; the default AEAD with
//!   feature `ring-default`, which the drivers' kernel builds enable).
//! - [`keys`]: key material, primary/secondary key slots, classic and epoch (`NEW_KEY_V2`) keys.
//! - [`pktid`]: transmit packet ids with exhaustion handling.
//! - [`replay`]: the receive replay window (check before AEAD, commit after authentication).
//! - [`peer`]: one peer's data path, and the peer table (by peer-id, longest-prefix match).
//! - [`mss`]: TCP MSS clamping for IPv4/IPv6 with checksum fix-up.
//! - [`keepalive`]: keepalive ping and timeout timers.
//! - [`framing`]: the 2-byte length framing of stream transports.
//! - [`keyfile`]: the `data64.key` test-bed key file.
//!
//! # Extended processor state (AVX) in the kernel
//! See [`crypto`]: the AES-GCM path of the `RustCrypto` backend uses AES-NI and PCLMULQDQ in their
//! legacy-SSE encodings only; its ChaCha20-Poly1305 path may select AVX2 code at run time and so
//! must run under the kernel's extended-state guard; with the ring backend every ring cipher (key
//! setup included) needs the guard on `x86_64`. [`crypto::Cipher::needs_extended_state`] tells the
//! drivers which case they are in for [`crypto::DefaultAead`].
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod crypto;
pub mod framing;
pub mod keepalive;
pub mod keyfile;
pub mod keys;
pub mod mss;
pub mod peer;
pub mod pktid;
pub mod replay;
pub mod time;
pub mod wire;

pub use crypto::{Aead, Cipher, DefaultAead, RustCryptoAead};
pub use keys::{KeyConfig, KeyDirection, KeyFormat, KeySlotId};
pub use peer::{
    Endpoint, OpenError, OpenStart, Opened, Peer, PeerConfig, PeerTable, PeerTicket, Received, SealError,
    Sealed,
};
pub use time::Instant;
