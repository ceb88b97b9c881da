//! Handshake options: option headers, option payload parsing and option replies.
//!
//! Every length inside an option payload is checked against the bytes actually
//! present, every string against the spec's 4096-byte limit, and the whole
//! payload against [`MAX_OPTION_BYTES`] before it is read at all.

use super::consts::{
    opt, IHAVEOPT, MAX_OPTION_BYTES, MAX_STRING_BYTES, OPTION_HEADER_BYTES, OPTION_REPLY_MAGIC,
};
use super::request::be_u64;
use super::ProtoError;

/// The 16-byte header before every client option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionHeader {
    /// Option code (`opt::*`).
    pub option: u32,
    /// Payload length in bytes.
    pub length: u32,
}

impl OptionHeader {
    /// Decodes an option header, checking the `IHAVEOPT` magic and the length bound.
    pub fn decode(bytes: &[u8; OPTION_HEADER_BYTES]) -> Result<OptionHeader, ProtoError> {
        let magic = be_u64(&bytes[0..8]);
        if magic != IHAVEOPT {
            return Err(ProtoError::BadOptionMagic(magic));
        }
        let option = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        let length = u32::from_be_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
        if length > MAX_OPTION_BYTES {
            return Err(ProtoError::OptionTooLong {
                option,
                length_bytes: length,
                max_bytes: MAX_OPTION_BYTES,
            });
        }
        Ok(OptionHeader { option, length })
    }

    /// Encodes an option header (what a client sends).
    pub fn encode(&self) -> [u8; OPTION_HEADER_BYTES] {
        let mut out = [0u8; OPTION_HEADER_BYTES];
        out[0..8].copy_from_slice(&IHAVEOPT.to_be_bytes());
        out[8..12].copy_from_slice(&self.option.to_be_bytes());
        out[12..16].copy_from_slice(&self.length.to_be_bytes());
        out
    }
}

/// The payload of `NBD_OPT_INFO` and `NBD_OPT_GO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoRequest {
    /// Export name ("" = default export).
    pub name: String,
    /// Information types asked for (`info::*`), unknown ones included.
    pub requests: Vec<u16>,
}

impl InfoRequest {
    /// Encodes the payload (what a client sends).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(6 + self.name.len() + 2 * self.requests.len());
        out.extend_from_slice(&(self.name.len() as u32).to_be_bytes());
        out.extend_from_slice(self.name.as_bytes());
        out.extend_from_slice(&(self.requests.len() as u16).to_be_bytes());
        for r in &self.requests {
            out.extend_from_slice(&r.to_be_bytes());
        }
        out
    }
}

/// The payload of `NBD_OPT_LIST_META_CONTEXT` and `NBD_OPT_SET_META_CONTEXT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaContextRequest {
    /// Export the contexts are for.
    pub export_name: String,
    /// Queries such as `base:allocation` or `base:`.
    pub queries: Vec<String>,
}

impl MetaContextRequest {
    /// Encodes the payload (what a client sends).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(self.export_name.len() as u32).to_be_bytes());
        out.extend_from_slice(self.export_name.as_bytes());
        out.extend_from_slice(&(self.queries.len() as u32).to_be_bytes());
        for q in &self.queries {
            out.extend_from_slice(&(q.len() as u32).to_be_bytes());
            out.extend_from_slice(q.as_bytes());
        }
        out
    }
}

/// A parsed client option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOption {
    /// `EXPORT_NAME` with the export name.
    ExportName(String),
    /// `ABORT` (any payload is ignored, as the spec asks).
    Abort,
    /// `LIST`.
    List,
    /// `STARTTLS`.
    StartTls,
    /// `INFO`.
    Info(InfoRequest),
    /// `GO`.
    Go(InfoRequest),
    /// `STRUCTURED_REPLY`.
    StructuredReply,
    /// `LIST_META_CONTEXT`.
    ListMetaContext(MetaContextRequest),
    /// `SET_META_CONTEXT`.
    SetMetaContext(MetaContextRequest),
    /// Any option this server does not implement (answered `ERR_UNSUP`).
    Unsupported(u32),
}

impl ClientOption {
    /// Parses the payload of option `option`. Options that take no data
    /// reject a non-empty payload with [`ProtoError::UnexpectedOptionData`].
    pub fn parse(option: u32, data: &[u8]) -> Result<ClientOption, ProtoError> {
        let no_data = |parsed: ClientOption| {
            if data.is_empty() {
                Ok(parsed)
            } else {
                Err(ProtoError::UnexpectedOptionData {
                    option,
                    length_bytes: data.len(),
                })
            }
        };
        match option {
            opt::EXPORT_NAME => Ok(ClientOption::ExportName(
                parse_string(data, "export name")?.to_owned(),
            )),
            opt::ABORT => Ok(ClientOption::Abort),
            opt::LIST => no_data(ClientOption::List),
            opt::STARTTLS => no_data(ClientOption::StartTls),
            opt::INFO => Ok(ClientOption::Info(parse_info_request(data)?)),
            opt::GO => Ok(ClientOption::Go(parse_info_request(data)?)),
            opt::STRUCTURED_REPLY => no_data(ClientOption::StructuredReply),
            opt::LIST_META_CONTEXT => Ok(ClientOption::ListMetaContext(
                parse_meta_context_request(data)?,
            )),
            opt::SET_META_CONTEXT => Ok(ClientOption::SetMetaContext(parse_meta_context_request(
                data,
            )?)),
            other => Ok(ClientOption::Unsupported(other)),
        }
    }
}

/// A cursor over an option payload that fails instead of reading past the end.
struct Cursor<'a> {
    data: &'a [u8],
    what: &'static str,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        if n > self.data.len() {
            return Err(ProtoError::Truncated(self.what));
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Ok(head)
    }

    fn u16(&mut self) -> Result<u16, ProtoError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, ProtoError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A u32-length-prefixed string.
    fn string(&mut self, what: &'static str) -> Result<&'a str, ProtoError> {
        let len = self.u32()?;
        let len = usize::try_from(len).map_err(|_| ProtoError::Truncated(what))?;
        if len > MAX_STRING_BYTES {
            return Err(ProtoError::StringTooLong {
                what,
                length_bytes: len,
            });
        }
        let bytes = self.take(len)?;
        parse_string(bytes, what)
    }
}

fn parse_string<'a>(bytes: &'a [u8], what: &'static str) -> Result<&'a str, ProtoError> {
    if bytes.len() > MAX_STRING_BYTES {
        return Err(ProtoError::StringTooLong {
            what,
            length_bytes: bytes.len(),
        });
    }
    std::str::from_utf8(bytes).map_err(|_| ProtoError::NotUtf8(what))
}

/// Parses an `INFO`/`GO` payload: u32 name length, name, u16 n, n × u16.
pub fn parse_info_request(data: &[u8]) -> Result<InfoRequest, ProtoError> {
    let mut cur = Cursor {
        data,
        what: "INFO/GO request",
    };
    let name = cur.string("export name")?.to_owned();
    let count = cur.u16()?;
    let mut requests = Vec::with_capacity(usize::from(count).min(cur.data.len() / 2));
    for _ in 0..count {
        requests.push(cur.u16()?);
    }
    if !cur.data.is_empty() {
        return Err(ProtoError::TrailingBytes {
            what: "INFO/GO request",
            length_bytes: cur.data.len(),
        });
    }
    Ok(InfoRequest { name, requests })
}

/// Parses a `LIST_/SET_META_CONTEXT` payload: u32 name length, name, u32 n,
/// n × (u32 length, query).
pub fn parse_meta_context_request(data: &[u8]) -> Result<MetaContextRequest, ProtoError> {
    let mut cur = Cursor {
        data,
        what: "meta context request",
    };
    let export_name = cur.string("export name")?.to_owned();
    let count = cur.u32()?;
    // Each query takes at least 4 bytes, which bounds the loop by the payload.
    if u64::from(count) * 4 > cur.data.len() as u64 {
        return Err(ProtoError::Truncated("meta context queries"));
    }
    let mut queries = Vec::with_capacity(count as usize);
    for _ in 0..count {
        queries.push(cur.string("meta context query")?.to_owned());
    }
    if !cur.data.is_empty() {
        return Err(ProtoError::TrailingBytes {
            what: "meta context request",
            length_bytes: cur.data.len(),
        });
    }
    Ok(MetaContextRequest {
        export_name,
        queries,
    })
}

/// Appends an option reply: magic, option, reply type, length, data.
pub fn put_option_reply(out: &mut Vec<u8>, option: u32, reply_type: u32, data: &[u8]) {
    out.extend_from_slice(&OPTION_REPLY_MAGIC.to_be_bytes());
    out.extend_from_slice(&option.to_be_bytes());
    out.extend_from_slice(&reply_type.to_be_bytes());
    // Option replies are built from bounded strings and fixed fields.
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
}

/// A decoded option reply header (client side, tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionReplyHeader {
    /// The option answered.
    pub option: u32,
    /// Reply type (`rep::*`).
    pub reply_type: u32,
    /// Length of the reply data.
    pub length: u32,
}

impl OptionReplyHeader {
    /// Decodes the 20-byte option reply header.
    pub fn decode(bytes: &[u8; 20]) -> Result<OptionReplyHeader, ProtoError> {
        let magic = be_u64(&bytes[0..8]);
        if magic != OPTION_REPLY_MAGIC {
            return Err(ProtoError::BadOptionMagic(magic));
        }
        Ok(OptionReplyHeader {
            option: u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]),
            reply_type: u32::from_be_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]),
            length: u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::consts::rep;

    #[test]
    fn golden_option_header_and_reply() {
        let header = OptionHeader {
            option: opt::GO,
            length: 10,
        };
        assert_eq!(
            header.encode(),
            [0x49, 0x48, 0x41, 0x56, 0x45, 0x4f, 0x50, 0x54, 0, 0, 0, 7, 0, 0, 0, 10],
            "NBD option header format changed"
        );
        assert_eq!(OptionHeader::decode(&header.encode()), Ok(header));
        let mut out = Vec::new();
        put_option_reply(&mut out, opt::LIST, rep::ACK, &[]);
        assert_eq!(
            out,
            [0, 0x03, 0xe8, 0x89, 0x04, 0x55, 0x65, 0xa9, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0],
            "NBD option reply format changed"
        );
    }

    #[test]
    fn oversized_option_length_is_rejected_before_reading() {
        let header = OptionHeader {
            option: 99,
            length: MAX_OPTION_BYTES + 1,
        };
        assert!(matches!(
            OptionHeader::decode(&header.encode()),
            Err(ProtoError::OptionTooLong { option: 99, .. })
        ));
    }

    #[test]
    fn info_request_parsing_checks_lengths() {
        let req = InfoRequest {
            name: "disk".into(),
            requests: vec![3, 1, 2],
        };
        assert_eq!(parse_info_request(&req.encode()), Ok(req.clone()));
        let bytes = req.encode();
        assert!(parse_info_request(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            parse_info_request(&longer),
            Err(ProtoError::TrailingBytes { .. })
        ));
        // Name length pointing past the end.
        assert!(parse_info_request(&[0, 0, 0, 9, b'a', 0, 0]).is_err());
    }

    #[test]
    fn meta_context_parsing_bounds_query_count() {
        let req = MetaContextRequest {
            export_name: "".into(),
            queries: vec!["base:allocation".into()],
        };
        assert_eq!(parse_meta_context_request(&req.encode()), Ok(req));
        // Claims 4 billion queries in 8 bytes.
        assert!(parse_meta_context_request(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn options_without_data_reject_data() {
        assert_eq!(ClientOption::parse(opt::LIST, &[]), Ok(ClientOption::List));
        assert!(ClientOption::parse(opt::LIST, &[1]).is_err());
        assert_eq!(
            ClientOption::parse(opt::ABORT, &[1, 2]),
            Ok(ClientOption::Abort)
        );
        assert_eq!(
            ClientOption::parse(1234, &[1, 2]),
            Ok(ClientOption::Unsupported(1234))
        );
        assert_eq!(
            ClientOption::parse(opt::EXPORT_NAME, b"x"),
            Ok(ClientOption::ExportName("x".into()))
        );
        assert!(ClientOption::parse(opt::EXPORT_NAME, &[0xff]).is_err());
    }
}
