//! The error type of the wire codec: every variant names the packet and what was wrong with it.

use crate::header::HeaderKind;

/// What went wrong while decoding or encoding a DRBD packet.
///
/// A decode error means the byte stream is not a valid DRBD 8.4 stream; the connection should be
/// dropped (the kernel goes to `ProtocolError`). Packet names are DRBD's (`P_SIZES`, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The first bytes of a header are none of the three DRBD magics.
    #[error(
        "bad header magic 0x{magic:08x} (expected h80 0x83740267, h95 0x835a or h100 0x8620ec20)"
    )]
    BadMagic {
        /// The first four bytes, big-endian.
        magic: u32,
    },
    /// An h100 header's pad word is not zero (the kernel rejects it too).
    #[error("h100 header padding is 0x{pad:08x}, must be 0")]
    HeaderPadNotZero {
        /// The pad word.
        pad: u32,
    },
    /// A command number this codec does not know.
    #[error("unknown command 0x{command:04x}")]
    UnknownCommand {
        /// The command number from the header.
        command: u16,
    },
    /// A known command that this codec does not decode or encode (e.g. P_WSAME).
    #[error("unsupported command {packet} (0x{command:04x})")]
    UnsupportedCommand {
        /// DRBD's name of the packet.
        packet: &'static str,
        /// The command number.
        command: u16,
    },
    /// The header announces more payload than this packet type (or the decoder's limit) allows.
    #[error("{packet}: length {length} exceeds limit {limit}")]
    PayloadTooLong {
        /// DRBD's name of the packet.
        packet: &'static str,
        /// The announced payload length in bytes.
        length: u64,
        /// The largest accepted payload length in bytes.
        limit: u64,
    },
    /// The payload is shorter than the packet's fixed part.
    #[error("short payload for {packet}: {length} bytes, need {need}")]
    ShortPayload {
        /// DRBD's name of the packet.
        packet: &'static str,
        /// The payload length in bytes.
        length: usize,
        /// The bytes needed.
        need: usize,
    },
    /// The payload length is not one this packet can have (e.g. P_SIZES of 40 bytes).
    #[error("{packet}: payload of {length} bytes is not a valid length ({expected})")]
    BadLength {
        /// DRBD's name of the packet.
        packet: &'static str,
        /// The payload length in bytes.
        length: usize,
        /// The lengths that are valid, in words.
        expected: &'static str,
    },
    /// A field holds a value outside its range (e.g. a state's `conn` of 30).
    #[error("{packet}: invalid {field} {value}")]
    InvalidField {
        /// DRBD's name of the packet.
        packet: &'static str,
        /// The field's name.
        field: &'static str,
        /// The offending value.
        value: u64,
    },
    /// A string field (an algorithm name) is not ASCII text.
    #[error("{packet}: {field} is not an ASCII string")]
    BadString {
        /// DRBD's name of the packet.
        packet: &'static str,
        /// The field's name.
        field: &'static str,
    },
    /// A string to encode does not fit its field (with its NUL terminator).
    #[error("{packet}: {field} of {length} bytes does not fit (at most {max})")]
    StringTooLong {
        /// DRBD's name of the packet.
        packet: &'static str,
        /// The field's name.
        field: &'static str,
        /// The string's length in bytes.
        length: usize,
        /// The longest string that fits.
        max: usize,
    },
    /// A payload to encode is larger than the header kind can describe (h80 carries 16 bits).
    #[error("{packet}: payload of {length} bytes does not fit an {kind} header (at most {max})")]
    TooLongForHeader {
        /// DRBD's name of the packet.
        packet: &'static str,
        /// The payload length in bytes.
        length: usize,
        /// The header kind asked for.
        kind: HeaderKind,
        /// The largest payload that header can carry.
        max: u64,
    },
    /// A volume number other than 0 was asked for with a header that has no volume field.
    #[error("volume {volume} needs an h100 header, not {kind}")]
    VolumeNeedsH100 {
        /// The volume number.
        volume: u16,
        /// The header kind asked for.
        kind: HeaderKind,
    },
    /// A P_COMPRESSED_BITMAP code string is not valid RLE+VLI.
    #[error("P_COMPRESSED_BITMAP: {reason} at code bit {bit_offset}")]
    BadBitmapCode {
        /// What was wrong.
        reason: &'static str,
        /// The bit position in the code string.
        bit_offset: u64,
    },
    /// Applying a bitmap packet would write past the end of the bitmap.
    #[error("{packet}: bitmap overflow: bits up to {end_bit} but the bitmap has {total_bits}")]
    BitmapOverflow {
        /// DRBD's name of the packet.
        packet: &'static str,
        /// One past the last bit the packet covers.
        end_bit: u64,
        /// The number of bits in the bitmap.
        total_bits: u64,
    },
    /// A run length that the RLE encoder cannot represent (zero, or above 2^56 + ...).
    #[error("P_COMPRESSED_BITMAP: run length {run} cannot be encoded")]
    BadRunLength {
        /// The run length in bits.
        run: u64,
    },
}
