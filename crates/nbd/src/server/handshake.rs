//! Fixed-newstyle negotiation: greeting, client flags and option haggling
//! until `NBD_OPT_GO`/`NBD_OPT_EXPORT_NAME` (transmission) or `NBD_OPT_ABORT`.
//!
//! Unknown options get `ERR_UNSUP` and haggling continues; malformed option
//! payloads get `ERR_INVALID`; an option header with a bad magic or an
//! option longer than `MAX_OPTION_BYTES` ends the connection, as does an
//! unknown client flag. Metadata contexts selected with
//! `SET_META_CONTEXT` only count if they were selected for the export
//! finally chosen.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::NbdError;
use crate::export::{ExportInfo, Exports, OpenError};
use crate::proto::consts::{
    info, opt, rep, BASE_ALLOCATION, FLAG_C_NO_ZEROES, FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES,
    IHAVEOPT, KNOWN_CLIENT_FLAGS, MAX_STRING_BYTES, NBD_MAGIC, OPTION_HEADER_BYTES,
};
use crate::proto::reply::truncate_str;
use crate::proto::{
    put_option_reply, ClientOption, InfoRequest, MetaContextRequest, OptionHeader,
    TransmissionParams,
};

use super::sizes::BlockSizes;
use super::ServerLimits;

/// The id given to `base:allocation` by `SET_META_CONTEXT`.
const BASE_ALLOCATION_ID: u32 = 1;

/// The outcome of a successful negotiation.
pub(crate) struct Negotiated<D> {
    /// The opened export.
    pub device: D,
    /// What requests are validated against.
    pub params: TransmissionParams,
}

/// Haggling state carried from option to option.
#[derive(Default)]
struct State {
    no_zeroes: bool,
    structured: bool,
    /// Export name for which `base:allocation` was selected.
    meta_context_export: Option<String>,
}

/// Runs the handshake; `Ok(None)` means the client aborted cleanly.
pub(crate) async fn negotiate<S, E>(
    stream: &mut S,
    exports: &E,
    limits: &ServerLimits,
) -> Result<Option<Negotiated<E::Device>>, NbdError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    E: Exports,
{
    let mut greeting = [0u8; 18];
    greeting[0..8].copy_from_slice(&NBD_MAGIC.to_be_bytes());
    greeting[8..16].copy_from_slice(&IHAVEOPT.to_be_bytes());
    greeting[16..18].copy_from_slice(&(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes());
    stream.write_all(&greeting).await?;
    stream.flush().await?;

    let client_flags = stream.read_u32().await?;
    if client_flags & !KNOWN_CLIENT_FLAGS != 0 {
        tracing::warn!(client_flags, "client sent unknown handshake flags; closing");
        return Err(NbdError::UnknownClientFlags(client_flags));
    }
    let mut state = State {
        no_zeroes: client_flags & FLAG_C_NO_ZEROES != 0,
        ..State::default()
    };

    let mut out = Vec::with_capacity(512);
    loop {
        let mut header = [0u8; OPTION_HEADER_BYTES];
        stream.read_exact(&mut header).await?;
        let header = OptionHeader::decode(&header)
            .inspect_err(|e| tracing::warn!(error = %e, "bad option"))?;
        let mut data = vec![0u8; header.length as usize];
        stream.read_exact(&mut data).await?;
        tracing::debug!(option = header.option, length = header.length, "option");

        out.clear();
        let parsed = ClientOption::parse(header.option, &data);
        let step = match parsed {
            Err(e) if header.option == opt::EXPORT_NAME => {
                tracing::warn!(error = %e, "bad NBD_OPT_EXPORT_NAME");
                return Err(e.into());
            }
            Err(e) => {
                tracing::debug!(error = %e, option = header.option, "invalid option");
                put_error(&mut out, header.option, rep::ERR_INVALID, &e.to_string());
                None
            }
            Ok(option) => handle_option(option, &mut state, exports, limits, &mut out)?,
        };
        let result = stream.write_all(&out).await.and(stream.flush().await);
        match step {
            Some(Step::Abort) => return Ok(None),
            Some(Step::Transmit(negotiated)) => {
                result?;
                return Ok(Some(negotiated));
            }
            None => result?,
        }
    }
}

enum Step<D> {
    Abort,
    Transmit(Negotiated<D>),
}

fn handle_option<E: Exports>(
    option: ClientOption,
    state: &mut State,
    exports: &E,
    limits: &ServerLimits,
    out: &mut Vec<u8>,
) -> Result<Option<Step<E::Device>>, NbdError> {
    match option {
        ClientOption::ExportName(name) => {
            let (info, device) = exports.open(&name).map_err(|reason| {
                tracing::warn!(export = %name, %reason, "NBD_OPT_EXPORT_NAME refused; closing");
                NbdError::ExportRefused {
                    name: name.clone(),
                    reason,
                }
            })?;
            let params = transmission_params(&info, &name, state, limits);
            out.extend_from_slice(&info.size_bytes.to_be_bytes());
            out.extend_from_slice(&params.flags.to_be_bytes());
            if !state.no_zeroes {
                out.extend_from_slice(&[0u8; 124]);
            }
            tracing::info!(export = %name, structured = state.structured, "client entered transmission (EXPORT_NAME)");
            return Ok(Some(Step::Transmit(Negotiated { device, params })));
        }
        ClientOption::Abort => {
            put_option_reply(out, opt::ABORT, rep::ACK, &[]);
            return Ok(Some(Step::Abort));
        }
        ClientOption::List => {
            for (name, description) in exports.list() {
                let name = truncate_str(&name, MAX_STRING_BYTES);
                let description = truncate_str(&description, MAX_STRING_BYTES);
                let mut data = Vec::with_capacity(4 + name.len() + description.len());
                data.extend_from_slice(&(name.len() as u32).to_be_bytes());
                data.extend_from_slice(name.as_bytes());
                data.extend_from_slice(description.as_bytes());
                put_option_reply(out, opt::LIST, rep::SERVER, &data);
            }
            put_option_reply(out, opt::LIST, rep::ACK, &[]);
        }
        ClientOption::StartTls => put_error(
            out,
            opt::STARTTLS,
            rep::ERR_POLICY,
            "TLS is not supported by this server",
        ),
        ClientOption::Info(request) => {
            if let Err((reply_type, message)) = answer_info(
                opt::INFO,
                &request,
                exports.info(&request.name),
                limits,
                out,
            ) {
                put_error(out, opt::INFO, reply_type, &message);
            }
        }
        ClientOption::Go(request) => match exports.open(&request.name) {
            Ok((info, device)) => {
                let answered = answer_info(opt::GO, &request, Ok(info.clone()), limits, out);
                debug_assert!(answered.is_ok());
                let params = transmission_params(&info, &request.name, state, limits);
                tracing::info!(export = %request.name, structured = state.structured,
                    base_allocation = params.meta_context_id.is_some(), "client entered transmission (GO)");
                return Ok(Some(Step::Transmit(Negotiated { device, params })));
            }
            Err(e) => {
                let (reply_type, message) = open_error_reply(e);
                tracing::info!(export = %request.name, %message, "NBD_OPT_GO refused");
                put_error(out, opt::GO, reply_type, &message);
            }
        },
        ClientOption::StructuredReply => {
            state.structured = true;
            put_option_reply(out, opt::STRUCTURED_REPLY, rep::ACK, &[]);
        }
        ClientOption::ListMetaContext(request) => {
            meta_context(opt::LIST_META_CONTEXT, &request, state, exports, out)
        }
        ClientOption::SetMetaContext(request) => {
            state.meta_context_export = None;
            meta_context(opt::SET_META_CONTEXT, &request, state, exports, out);
        }
        ClientOption::Unsupported(code) => {
            put_error(
                out,
                code,
                rep::ERR_UNSUP,
                &format!("option {code} is not supported by this server"),
            );
        }
    }
    Ok(None)
}

fn put_error(out: &mut Vec<u8>, option: u32, reply_type: u32, message: &str) {
    put_option_reply(
        out,
        option,
        reply_type,
        truncate_str(message, MAX_STRING_BYTES).as_bytes(),
    );
}

fn open_error_reply(e: OpenError) -> (u32, String) {
    match e {
        OpenError::Unknown(message) => (rep::ERR_UNKNOWN, message),
        OpenError::Policy(message) => (rep::ERR_POLICY, message),
    }
}

/// Appends the `REP_INFO` items and the final `ACK` of an `INFO`/`GO`.
fn answer_info(
    option: u32,
    request: &InfoRequest,
    info: Result<ExportInfo, OpenError>,
    limits: &ServerLimits,
    out: &mut Vec<u8>,
) -> Result<(), (u32, String)> {
    let info = info.map_err(open_error_reply)?;
    let sizes = BlockSizes::effective(&info, limits);
    let mut item = Vec::with_capacity(14);
    item.extend_from_slice(&info::EXPORT.to_be_bytes());
    item.extend_from_slice(&info.size_bytes.to_be_bytes());
    item.extend_from_slice(&info.transmission_flags().to_be_bytes());
    put_option_reply(out, option, rep::INFO, &item);

    if request.requests.contains(&info::NAME) {
        item.clear();
        item.extend_from_slice(&info::NAME.to_be_bytes());
        item.extend_from_slice(request.name.as_bytes());
        put_option_reply(out, option, rep::INFO, &item);
    }
    if request.requests.contains(&info::DESCRIPTION) && !info.description.is_empty() {
        item.clear();
        item.extend_from_slice(&info::DESCRIPTION.to_be_bytes());
        item.extend_from_slice(truncate_str(&info.description, MAX_STRING_BYTES).as_bytes());
        put_option_reply(out, option, rep::INFO, &item);
    }
    // Always sent: clients that did not ask ignore it, and it tells those
    // that did the constraints we enforce.
    item.clear();
    item.extend_from_slice(&info::BLOCK_SIZE.to_be_bytes());
    item.extend_from_slice(&sizes.min_bytes.to_be_bytes());
    item.extend_from_slice(&sizes.preferred_bytes.to_be_bytes());
    item.extend_from_slice(&sizes.max_bytes.to_be_bytes());
    put_option_reply(out, option, rep::INFO, &item);
    put_option_reply(out, option, rep::ACK, &[]);
    Ok(())
}

/// Answers `LIST_META_CONTEXT` or `SET_META_CONTEXT` (the caller has already
/// cleared the selection for SET, which replaces it even on failure).
fn meta_context<E: Exports>(
    option: u32,
    request: &MetaContextRequest,
    state: &mut State,
    exports: &E,
    out: &mut Vec<u8>,
) {
    let listing = option == opt::LIST_META_CONTEXT;
    if !state.structured {
        put_error(
            out,
            option,
            rep::ERR_INVALID,
            "negotiate NBD_OPT_STRUCTURED_REPLY first",
        );
        return;
    }
    if let Err(e) = exports.info(&request.export_name) {
        let (reply_type, message) = open_error_reply(e);
        put_error(out, option, reply_type, &message);
        return;
    }
    if base_allocation_matches(&request.queries, listing) {
        let id = if listing { 0 } else { BASE_ALLOCATION_ID };
        let mut data = Vec::with_capacity(4 + BASE_ALLOCATION.len());
        data.extend_from_slice(&id.to_be_bytes());
        data.extend_from_slice(BASE_ALLOCATION.as_bytes());
        put_option_reply(out, option, rep::META_CONTEXT, &data);
        if !listing {
            state.meta_context_export = Some(request.export_name.clone());
        }
    }
    put_option_reply(out, option, rep::ACK, &[]);
}

/// Whether the queries select (SET) or list (LIST) `base:allocation`. LIST
/// with no query lists everything and treats `base:` as a wildcard; SET
/// selects nothing without an exact `base:allocation` query.
pub(crate) fn base_allocation_matches(queries: &[String], listing: bool) -> bool {
    if listing && queries.is_empty() {
        return true;
    }
    queries
        .iter()
        .any(|q| q == BASE_ALLOCATION || (listing && q == "base:"))
}

fn transmission_params(
    info: &ExportInfo,
    name: &str,
    state: &State,
    limits: &ServerLimits,
) -> TransmissionParams {
    let sizes = BlockSizes::effective(info, limits);
    let meta_selected = state.structured && state.meta_context_export.as_deref() == Some(name);
    TransmissionParams {
        size_bytes: info.size_bytes,
        flags: info.transmission_flags(),
        block_size_min: sizes.min_bytes,
        payload_max_bytes: sizes.max_bytes,
        structured: state.structured,
        meta_context_id: meta_selected.then_some(BASE_ALLOCATION_ID),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_context_query_matching() {
        let q = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(base_allocation_matches(&[], true));
        assert!(!base_allocation_matches(&[], false));
        assert!(base_allocation_matches(&q(&["base:"]), true));
        assert!(!base_allocation_matches(&q(&["base:"]), false));
        assert!(base_allocation_matches(
            &q(&["x-foo:bar", "base:allocation"]),
            false
        ));
        assert!(!base_allocation_matches(&q(&["qemu:dirty-bitmap:a"]), true));
    }
}
