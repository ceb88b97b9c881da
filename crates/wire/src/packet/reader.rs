//! Bounds-checked big-endian readers and writers for packet payloads.

use crate::WireError;

/// Reads big-endian fields from a payload; every read is bounds-checked and names the packet.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    packet: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], packet: &'static str) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            packet,
        }
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or(WireError::ShortPayload {
                packet: self.packet,
                length: self.buf.len(),
                need: self.pos.saturating_add(n),
            })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, WireError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Position of the next unread byte.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Everything not read yet.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    /// A NUL-padded string field of `n` bytes (text up to the first NUL, or all `n` bytes).
    pub(crate) fn c_string(&mut self, n: usize, field: &'static str) -> Result<String, WireError> {
        let raw = self.bytes(n)?;
        c_string_from(raw, self.packet, field)
    }
}

/// Text up to the first NUL (or all of `raw`), which must be printable ASCII.
pub(crate) fn c_string_from(
    raw: &[u8],
    packet: &'static str,
    field: &'static str,
) -> Result<String, WireError> {
    let text = raw
        .iter()
        .position(|&b| b == 0)
        .map_or(raw, |nul| &raw[..nul]);
    if !text.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        return Err(WireError::BadString { packet, field });
    }
    Ok(text.iter().map(|&b| char::from(b)).collect())
}

/// Appends `text` NUL-padded to exactly `n` bytes; it must leave room for the NUL.
pub(crate) fn put_c_string(
    out: &mut Vec<u8>,
    text: &str,
    n: usize,
    packet: &'static str,
    field: &'static str,
) -> Result<(), WireError> {
    check_c_string(text, n, packet, field)?;
    out.extend_from_slice(text.as_bytes());
    out.resize(out.len() + (n - text.len()), 0);
    Ok(())
}

/// Checks that `text` is printable ASCII and fits `n` bytes with its NUL terminator.
pub(crate) fn check_c_string(
    text: &str,
    n: usize,
    packet: &'static str,
    field: &'static str,
) -> Result<(), WireError> {
    if text.len() >= n {
        return Err(WireError::StringTooLong {
            packet,
            field,
            length: text.len(),
            max: n - 1,
        });
    }
    if !text.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(WireError::BadString { packet, field });
    }
    Ok(())
}
