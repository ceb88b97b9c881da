//! The `nbd-client` command line for an NBD URI (the forms `rdbdadm nbd-uri` prints).
//!
//! nbd-client reads its first non-option argument as the host (or, with `-unix`, the
//! socket path), the second as the port when it is a number, and the next as the
//! device; `-N` names the export and `-b` sets the device's block size.

/// The block size given to the kernel NBD device: the preferred block size rdbd's
/// exports advertise (their backing files are written with 4 KiB-aligned O_DIRECT I/O).
pub const NBD_BLOCK_SIZE_BYTES: u32 = 4096;

/// The NBD port when a URI has none.
const NBD_DEFAULT_PORT: &str = "10809";

/// `nbd+unix:///NAME?socket=PATH` or `nbd://HOST[:PORT]/NAME` → nbd-client arguments
/// (without the device, which comes last). None for a URI nbd-client cannot take.
pub fn nbd_client_args(uri: &str) -> Option<Vec<String>> {
    let (mut argv, name) = if let Some(rest) = uri.strip_prefix("nbd+unix:///") {
        let (name, query) = rest.split_once('?')?;
        let socket = query.split('&').find_map(|kv| kv.strip_prefix("socket="))?;
        if socket.is_empty() {
            return None;
        }
        (vec!["-unix".to_string(), socket.to_string()], name)
    } else {
        let rest = uri.strip_prefix("nbd://")?;
        let (hostport, name) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            // `[v6]` or `[v6]:PORT`.
            let (host, after) = v6.split_once(']')?;
            match after {
                "" => (host, NBD_DEFAULT_PORT),
                _ => (host, after.strip_prefix(':')?),
            }
        } else {
            hostport
                .rsplit_once(':')
                .unwrap_or((hostport, NBD_DEFAULT_PORT))
        };
        if host.is_empty() || port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        (vec![host.to_string(), port.to_string()], name)
    };
    // Always name the export (an empty name is the default export), so nbd-client never
    // falls back to reading its own configuration file.
    argv.extend([
        "-N".to_string(),
        name.to_string(),
        "-b".to_string(),
        NBD_BLOCK_SIZE_BYTES.to_string(),
    ]);
    Some(argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_to_nbd_client() {
        assert_eq!(
            nbd_client_args("nbd+unix:///data?socket=/run/rdbd/nbd.sock").unwrap(),
            vec!["-unix", "/run/rdbd/nbd.sock", "-N", "data", "-b", "4096"]
        );
        assert_eq!(
            nbd_client_args("nbd://10.0.0.7:10809/data").unwrap(),
            vec!["10.0.0.7", "10809", "-N", "data", "-b", "4096"]
        );
        assert_eq!(
            nbd_client_args("nbd://host").unwrap(),
            vec!["host", "10809", "-N", "", "-b", "4096"]
        );
        assert_eq!(
            nbd_client_args("nbd://[fd00::7]:10810/r0").unwrap(),
            vec!["fd00::7", "10810", "-N", "r0", "-b", "4096"]
        );
        assert_eq!(
            nbd_client_args("nbd://[fd00::7]/r0").unwrap(),
            vec!["fd00::7", "10809", "-N", "r0", "-b", "4096"]
        );
        assert!(nbd_client_args("http://x").is_none());
        assert!(nbd_client_args("nbd+unix:///data").is_none());
        assert!(nbd_client_args("nbd+unix:///data?socket=").is_none());
        assert!(nbd_client_args("nbd://host:port/x").is_none());
        assert!(nbd_client_args("nbd:///x").is_none());
    }
}
