//! A minimal raw NBD client and server harness for the integration tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rdbd_nbd::proto::{
    self, opt, rep, ChunkHeader, Command, InfoRequest, MetaContextRequest, OptionHeader,
    OptionReplyHeader, Request, SimpleReply,
};
use rdbd_nbd::testing::{mem_export_info, MemDevice, MemExports};
use rdbd_nbd::{serve_connection, NbdError, ServerLimits};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;

pub const MIB: u64 = 1024 * 1024;

/// A catalogue with export "disk" (`size` bytes, all features) and the device behind it.
pub fn one_export(size: u64) -> (Arc<MemExports>, Arc<MemDevice>) {
    let exports = MemExports::new();
    let device = Arc::new(MemDevice::new(size));
    exports.add("disk", mem_export_info(size), device.clone());
    (Arc::new(exports), device)
}

/// Serves `exports` on one end of an in-memory pipe; returns the other end.
pub fn serve_duplex(
    exports: Arc<MemExports>,
    limits: ServerLimits,
) -> (DuplexStream, JoinHandle<Result<(), NbdError>>) {
    let (client, server) = tokio::io::duplex(4 * 1024 * 1024);
    let handle = tokio::spawn(serve_connection(server, exports, limits));
    (client, handle)
}

/// The server task's result, failing the test if it does not end promptly.
pub async fn server_result(handle: JoinHandle<Result<(), NbdError>>) -> Result<(), NbdError> {
    tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("server did not finish")
        .expect("server panicked")
}

/// One decoded reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A simple reply (data only for successful reads).
    Simple {
        cookie: u64,
        error: u32,
        data: Vec<u8>,
    },
    /// One structured chunk (this server sends one chunk per reply).
    Chunk {
        header: ChunkHeader,
        payload: Vec<u8>,
    },
}

impl Reply {
    pub fn cookie(&self) -> u64 {
        match self {
            Reply::Simple { cookie, .. } => *cookie,
            Reply::Chunk { header, .. } => header.cookie,
        }
    }

    /// The error value (0 on success).
    pub fn error(&self) -> u32 {
        match self {
            Reply::Simple { error, .. } => *error,
            Reply::Chunk { header, payload } if header.chunk_type & 0x8000 != 0 => {
                proto::parse_error_chunk(payload)
                    .map(|(e, _)| e)
                    .unwrap_or(u32::MAX)
            }
            Reply::Chunk { .. } => 0,
        }
    }

    /// READ data of a successful read.
    pub fn data(&self) -> &[u8] {
        match self {
            Reply::Simple { data, .. } => data,
            Reply::Chunk { header, payload }
                if header.chunk_type == proto::chunk::TYPE_OFFSET_DATA =>
            {
                &payload[8..]
            }
            Reply::Chunk { .. } => &[],
        }
    }
}

pub struct TestClient<S> {
    pub io: S,
    pub structured: bool,
    /// Lengths of outstanding simple-reply reads by cookie.
    reads: HashMap<u64, u32>,
    next_cookie: u64,
}

impl<S: AsyncRead + AsyncWrite + Unpin> TestClient<S> {
    /// Reads the greeting (checking it) and sends `client_flags`.
    pub async fn greet(mut io: S, client_flags: u32) -> Self {
        let mut greeting = [0u8; 18];
        io.read_exact(&mut greeting).await.unwrap();
        assert_eq!(&greeting[..8], b"NBDMAGIC");
        assert_eq!(&greeting[8..16], b"IHAVEOPT");
        assert_eq!(
            u16::from_be_bytes([greeting[16], greeting[17]]),
            3,
            "FIXED_NEWSTYLE | NO_ZEROES"
        );
        // The server may already have dropped a misbehaving client; tests
        // that expect that check `closed()` afterwards.
        let _ = io.write_all(&client_flags.to_be_bytes()).await;
        TestClient {
            io,
            structured: false,
            reads: HashMap::new(),
            next_cookie: 1,
        }
    }

    pub async fn send_option(&mut self, option: u32, data: &[u8]) {
        let header = OptionHeader {
            option,
            length: data.len() as u32,
        };
        self.io.write_all(&header.encode()).await.unwrap();
        self.io.write_all(data).await.unwrap();
    }

    pub async fn read_option_reply(&mut self) -> (OptionReplyHeader, Vec<u8>) {
        let mut header = [0u8; 20];
        self.io.read_exact(&mut header).await.unwrap();
        let header = OptionReplyHeader::decode(&header).unwrap();
        let mut data = vec![0u8; header.length as usize];
        self.io.read_exact(&mut data).await.unwrap();
        (header, data)
    }

    /// Sends an option and collects replies up to the final ACK or error.
    pub async fn option(&mut self, option: u32, data: &[u8]) -> Vec<(u32, Vec<u8>)> {
        self.send_option(option, data).await;
        let mut replies = Vec::new();
        loop {
            let (header, data) = self.read_option_reply().await;
            assert_eq!(header.option, option, "reply to the wrong option");
            let last = header.reply_type == rep::ACK || header.reply_type & rep::FLAG_ERROR != 0;
            replies.push((header.reply_type, data));
            if last {
                return replies;
            }
        }
    }

    /// STRUCTURED_REPLY (optionally), SET_META_CONTEXT base:allocation
    /// (optionally) and GO; returns (size, transmission flags).
    pub async fn go(&mut self, name: &str, structured: bool, base_allocation: bool) -> (u64, u16) {
        if structured {
            assert_eq!(
                self.option(opt::STRUCTURED_REPLY, &[]).await,
                [(rep::ACK, vec![])]
            );
            self.structured = true;
        }
        if base_allocation {
            let req = MetaContextRequest {
                export_name: name.into(),
                queries: vec!["base:allocation".into()],
            };
            let replies = self.option(opt::SET_META_CONTEXT, &req.encode()).await;
            assert_eq!(replies.len(), 2, "{replies:?}");
            assert_eq!(replies[0].0, rep::META_CONTEXT);
        }
        let req = InfoRequest {
            name: name.into(),
            requests: vec![3],
        };
        let replies = self.option(opt::GO, &req.encode()).await;
        assert_eq!(
            replies.last().unwrap().0,
            rep::ACK,
            "GO failed: {replies:?}"
        );
        let export = replies
            .iter()
            .find(|(t, d)| *t == rep::INFO && d[..2] == [0, 0])
            .expect("INFO_EXPORT");
        let size = u64::from_be_bytes(export.1[2..10].try_into().unwrap());
        let flags = u16::from_be_bytes(export.1[10..12].try_into().unwrap());
        (size, flags)
    }

    pub fn cookie(&mut self) -> u64 {
        self.next_cookie += 1;
        self.next_cookie
    }

    /// Sends a request (with `payload` for WRITE); returns its cookie.
    pub async fn request(
        &mut self,
        command: Command,
        flags: u16,
        offset: u64,
        length: u32,
        payload: &[u8],
    ) -> u64 {
        let cookie = self.cookie();
        let req = Request {
            flags,
            command,
            cookie,
            offset,
            length,
        };
        if command == Command::Read {
            self.reads.insert(cookie, length);
        }
        self.io.write_all(&req.encode()).await.unwrap();
        self.io.write_all(payload).await.unwrap();
        cookie
    }

    pub async fn read_reply(&mut self) -> Reply {
        let mut magic = [0u8; 4];
        self.io.read_exact(&mut magic).await.unwrap();
        if u32::from_be_bytes(magic) == proto::SIMPLE_REPLY_MAGIC {
            let mut header = [0u8; 16];
            header[..4].copy_from_slice(&magic);
            self.io.read_exact(&mut header[4..]).await.unwrap();
            let simple = SimpleReply::decode(&header).unwrap();
            let read_len = self.reads.remove(&simple.cookie);
            let mut data = Vec::new();
            if let (Some(len), 0) = (read_len, simple.error) {
                data = vec![0u8; len as usize];
                self.io.read_exact(&mut data).await.unwrap();
            }
            Reply::Simple {
                cookie: simple.cookie,
                error: simple.error,
                data,
            }
        } else {
            let mut header = [0u8; 20];
            header[..4].copy_from_slice(&magic);
            self.io.read_exact(&mut header[4..]).await.unwrap();
            let header = ChunkHeader::decode(&header).unwrap();
            assert_ne!(
                header.flags & proto::chunk::FLAG_DONE,
                0,
                "this server sends single-chunk replies"
            );
            let mut payload = vec![0u8; header.length as usize];
            self.io.read_exact(&mut payload).await.unwrap();
            self.reads.remove(&header.cookie);
            Reply::Chunk { header, payload }
        }
    }

    /// Sends one request and waits for its reply.
    pub async fn call(
        &mut self,
        command: Command,
        flags: u16,
        offset: u64,
        length: u32,
        payload: &[u8],
    ) -> Reply {
        let cookie = self.request(command, flags, offset, length, payload).await;
        let reply = self.read_reply().await;
        assert_eq!(reply.cookie(), cookie);
        reply
    }

    /// True when the server closed the connection (EOF or reset).
    pub async fn closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.io.read(&mut byte)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}
