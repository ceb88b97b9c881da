//! The NBD wire protocol as pure, I/O-free code: constants, request decoding,
//! option parsing, reply encoding and request validation.
//!
//! Everything here works on byte slices and fixed arrays so that it can be
//! property-tested and fuzzed without sockets (`fuzz/fuzz_targets/nbd_*.rs`).

pub mod consts;
pub mod option;
pub mod reply;
pub mod request;
pub mod validate;

pub use consts::*;
pub use option::{
    parse_info_request, parse_meta_context_request, put_option_reply, ClientOption, InfoRequest,
    MetaContextRequest, OptionHeader, OptionReplyHeader,
};
pub use reply::{
    normalize_extents, parse_block_status_chunk, parse_error_chunk, put_block_status_chunk,
    put_error_chunk, put_offset_data_header, put_simple_reply, ChunkHeader, Extent, SimpleReply,
};
pub use request::{Command, Request};
pub use validate::{validate_request, Rejection, TransmissionParams};

/// What was wrong with bytes received from (or, for test clients, sent by) a peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// A request did not start with `NBD_REQUEST_MAGIC`.
    #[error("request magic is {0:#010x}, expected 0x25609513")]
    BadRequestMagic(u32),
    /// An option (or option reply) did not start with its magic.
    #[error("option magic is {0:#018x}, expected IHAVEOPT (0x49484156454f5054) or the option reply magic")]
    BadOptionMagic(u64),
    /// A reply did not start with a simple or structured reply magic.
    #[error("reply magic is {0:#010x}")]
    BadReplyMagic(u32),
    /// An option payload is longer than this server accepts.
    #[error(
        "option {option} has a {length_bytes}-byte payload, more than the {max_bytes}-byte limit"
    )]
    OptionTooLong {
        /// The option code.
        option: u32,
        /// The announced payload length.
        length_bytes: u32,
        /// The limit.
        max_bytes: u32,
    },
    /// A length field points past the end of the data it belongs to.
    #[error("{0} is truncated: a length field points past the end of the payload")]
    Truncated(&'static str),
    /// Bytes are left after the last field.
    #[error("{what} has {length_bytes} unexpected trailing bytes")]
    TrailingBytes {
        /// Which structure.
        what: &'static str,
        /// How many bytes were left.
        length_bytes: usize,
    },
    /// A string is longer than the spec's 4096-byte limit.
    #[error("{what} is {length_bytes} bytes, more than the 4096-byte string limit")]
    StringTooLong {
        /// Which string.
        what: &'static str,
        /// Its length.
        length_bytes: usize,
    },
    /// A string is not UTF-8.
    #[error("{0} is not valid UTF-8")]
    NotUtf8(&'static str),
    /// An option that takes no data came with data.
    #[error("option {option} takes no data but carried {length_bytes} bytes")]
    UnexpectedOptionData {
        /// The option code.
        option: u32,
        /// The payload length.
        length_bytes: usize,
    },
    /// A structured chunk would exceed the 32-bit length field.
    #[error("a {0}-byte data chunk does not fit a structured reply")]
    ChunkTooLong(u32),
}
