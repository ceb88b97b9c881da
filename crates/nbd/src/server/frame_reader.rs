//! Reading request headers and WRITE payloads from the client socket.
//!
//! Requests are read through a buffer so that one `read` syscall picks up
//! many pipelined requests: headers, and payloads whose unbuffered rest is
//! below [`SMALL_PAYLOAD_BYTES`] (a burst of 4 KiB WRITEs costs one syscall
//! and a short `memcpy` each). A larger payload takes whatever bytes the
//! buffer already holds and reads the rest straight into the caller's
//! aligned buffer, so large writes are not copied twice.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::proto::consts::REQUEST_BYTES;

/// Size of the header buffer.
pub(crate) const READ_BUFFER_BYTES: usize = 256 * 1024;

/// Payload rests below this are read through the buffer.
const SMALL_PAYLOAD_BYTES: usize = 64 * 1024;

pub(crate) struct FrameReader<R> {
    io: R,
    buf: Box<[u8]>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(crate) fn new(io: R) -> Self {
        FrameReader {
            io,
            buf: vec![0u8; READ_BUFFER_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    fn buffered(&self) -> usize {
        self.end - self.start
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads until at least `need` (at most the buffer size) bytes are
    /// buffered; false on EOF. Cancel-safe: bytes read stay buffered.
    async fn fill(&mut self, need: usize) -> io::Result<bool> {
        while self.buffered() < need {
            if self.buf.len() - self.start < need {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let n = self.io.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                return Ok(false);
            }
            self.end += n;
        }
        Ok(true)
    }

    /// The next request header; `None` on EOF exactly between requests.
    /// Cancel-safe: bytes already read stay buffered.
    pub(crate) async fn read_header(&mut self) -> io::Result<Option<[u8; REQUEST_BYTES]>> {
        if !self.fill(REQUEST_BYTES).await? {
            if self.buffered() == 0 {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "client closed inside a request header",
            ));
        }
        let mut header = [0u8; REQUEST_BYTES];
        header.copy_from_slice(&self.buf[self.start..self.start + REQUEST_BYTES]);
        self.consume(REQUEST_BYTES);
        Ok(Some(header))
    }

    /// Fills `dst` with the next `dst.len()` payload bytes.
    pub(crate) async fn read_payload(&mut self, dst: &mut [u8]) -> io::Result<()> {
        let through_buffer = dst.len() <= self.buf.len()
            && dst.len() - self.buffered().min(dst.len()) < SMALL_PAYLOAD_BYTES;
        if through_buffer && !self.fill(dst.len()).await? {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "client closed inside a WRITE payload",
            ));
        }
        let from_buffer = self.buffered().min(dst.len());
        dst[..from_buffer].copy_from_slice(&self.buf[self.start..self.start + from_buffer]);
        self.consume(from_buffer);
        if from_buffer < dst.len() {
            self.io.read_exact(&mut dst[from_buffer..]).await?;
        }
        Ok(())
    }

    /// Discards the next `len` payload bytes (a refused WRITE's data).
    pub(crate) async fn skip(&mut self, len: u64) -> io::Result<()> {
        let from_buffer = (self.buffered() as u64).min(len);
        self.consume(from_buffer as usize);
        let mut left = len - from_buffer;
        // The buffer is empty whenever bytes are left, so it serves as scratch.
        while left > 0 {
            let want = (left as usize).min(self.buf.len());
            let n = self.io.read(&mut self.buf[..want]).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "client closed inside a WRITE payload",
                ));
            }
            left -= n as u64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn headers_and_payloads_split_across_reads() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut bytes = Vec::new();
        for i in 0..50u8 {
            bytes.extend_from_slice(&[i; REQUEST_BYTES]);
            bytes.extend_from_slice(&vec![i ^ 0xff; 1000 + usize::from(i)]);
        }
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            client.write_all(&bytes).await.unwrap();
        });
        let mut reader = FrameReader::new(server);
        for i in 0..50u8 {
            let header = reader.read_header().await.unwrap().unwrap();
            assert_eq!(header, [i; REQUEST_BYTES]);
            let mut payload = vec![0u8; 1000 + usize::from(i)];
            if i % 2 == 0 {
                reader.read_payload(&mut payload).await.unwrap();
                assert!(payload.iter().all(|&b| b == i ^ 0xff));
            } else {
                reader.skip(payload.len() as u64).await.unwrap();
            }
        }
        writer.await.unwrap();
        assert!(reader.read_header().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn payloads_of_every_size_around_the_buffer_limits_arrive_intact() {
        // Sizes below, at and above the small-payload threshold and the buffer
        // size, so payloads are read through the buffer, straight into the
        // destination, and partly each way; the pipe's small capacity splits
        // every frame across many reads.
        let sizes = [
            1,
            4096,
            SMALL_PAYLOAD_BYTES - 1,
            SMALL_PAYLOAD_BYTES,
            SMALL_PAYLOAD_BYTES + 1,
            READ_BUFFER_BYTES - 1,
            READ_BUFFER_BYTES,
            READ_BUFFER_BYTES + SMALL_PAYLOAD_BYTES,
            3 * READ_BUFFER_BYTES + 7,
            4096,
        ];
        let (mut client, server) = tokio::io::duplex(100_000);
        let mut bytes = Vec::new();
        for (i, &len) in sizes.iter().enumerate() {
            bytes.extend_from_slice(&[i as u8; REQUEST_BYTES]);
            bytes.extend((0..len).map(|j| (j % 251) as u8 ^ i as u8));
        }
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            client.write_all(&bytes).await.unwrap();
        });
        let mut reader = FrameReader::new(server);
        for (i, &len) in sizes.iter().enumerate() {
            let header = reader.read_header().await.unwrap().unwrap();
            assert_eq!(header, [i as u8; REQUEST_BYTES], "header {i}");
            let mut payload = vec![0u8; len];
            reader.read_payload(&mut payload).await.unwrap();
            let bad = (0..len).find(|&j| payload[j] != (j % 251) as u8 ^ i as u8);
            assert_eq!(bad, None, "payload {i} ({len} bytes) corrupted");
        }
        writer.await.unwrap();
        assert!(reader.read_header().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn eof_inside_a_small_payload_is_an_error() {
        let (mut client, server) = tokio::io::duplex(4096);
        {
            use tokio::io::AsyncWriteExt;
            client.write_all(&[0u8; REQUEST_BYTES + 100]).await.unwrap();
        }
        drop(client);
        let mut reader = FrameReader::new(server);
        reader.read_header().await.unwrap().unwrap();
        let mut payload = vec![0u8; 4096];
        assert_eq!(
            reader.read_payload(&mut payload).await.unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }

    #[tokio::test]
    async fn eof_inside_a_header_is_an_error() {
        let (mut client, server) = tokio::io::duplex(64);
        {
            use tokio::io::AsyncWriteExt;
            client.write_all(&[1, 2, 3]).await.unwrap();
        }
        drop(client);
        let mut reader = FrameReader::new(server);
        assert_eq!(
            reader.read_header().await.unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
}
