//! The connection manager ([`manage`]): WFConnection (listen and connect), the
//! handshake, the session until the connection ends, the cleanup every lost connection
//! needs, and again; `connect-int` between attempts and the commands that arrive while
//! no session runs.

use super::*;

fn bind(ctx: &Ctx) -> std::io::Result<TcpListener> {
    let sock = if ctx.cfg.local.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }?;
    sock.set_reuseaddr(true)?;
    // Accepted sockets inherit the listener's buffer sizes.
    crate::peer::sockbuf::SocketBuffers::of(&ctx.cfg.settings).apply(&sock)?;
    sock.bind(ctx.cfg.local)?;
    sock.listen(16)
}

/// Whether the manager connects, with the option of the `connect` that asked for it
/// (given to the core's `Connect` event when the manager starts from StandAlone).
struct Want {
    connect: bool,
    discard_my_data: bool,
}

/// Waits `connect-int` while answering commands. `Some(true)`: shut down; `Some(false)`:
/// stop waiting (disconnect); `None`: the time is up.
async fn wait_connect_int(
    ctx: &Ctx,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    want: &mut Want,
) -> Option<bool> {
    let wait = tokio::time::sleep(Duration::from_secs(u64::from(
        ctx.cfg.settings.connect_int_s.max(1),
    )));
    tokio::pin!(wait);
    loop {
        tokio::select! {
            _ = &mut wait => return None,
            cmd = commands.recv() => if let Some(stop) = idle_command(cmd, want) {
                return Some(stop);
            },
        }
    }
}

/// Answers a command while not connected. Returns `Some` when the manager must stop
/// trying (`Some(true)`: shut down).
fn idle_command(cmd: Option<Command>, want: &mut Want) -> Option<bool> {
    match cmd {
        None => Some(true),
        Some(Command::Connect { discard_my_data }) => {
            *want = Want {
                connect: true,
                discard_my_data,
            };
            None
        }
        Some(Command::Disconnect(tx)) => {
            want.connect = false;
            let _ = tx.send(());
            Some(false)
        }
        Some(Command::Shutdown(tx)) => {
            let _ = tx.send(());
            Some(true)
        }
        Some(Command::RequestRole(_, tx)) => {
            let _ = tx.send(Ok(()));
            None
        }
        Some(Command::StateChanged) => None,
        Some(Command::Sync(c, tx)) => {
            verify::answer_idle(c, tx);
            None
        }
        Some(other) => {
            lifecycle::answer_not_now(other, "the resource is not connected");
            None
        }
    }
}

/// The connection manager of one resource.
pub(crate) async fn manage(mut ctx: Ctx, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut want = Want {
        connect: true,
        discard_my_data: false,
    };
    let mut listener: Option<TcpListener> = None;
    loop {
        if let Some(cfg) = ctx.link.take_next_cfg() {
            ctx.cfg = cfg;
        }
        if !want.connect {
            drop(listener.take());
            ctx.standalone();
            let cmd = match commands.recv().await {
                Some(Command::Reconfigure(cfg, tx)) => {
                    lifecycle::reconfigure(&mut ctx, *cfg, tx);
                    continue;
                }
                other => other,
            };
            if idle_command(cmd, &mut want) == Some(true) {
                return;
            }
            continue;
        }
        let l = match &listener {
            Some(l) => l,
            None => match bind(&ctx) {
                Ok(l) => listener.insert(l),
                Err(e) => {
                    tracing::error!(resource = %ctx.name(), address = %ctx.cfg.local, error = %e, "cannot listen on the replication address; retrying in {} s", ctx.cfg.settings.connect_int_s);
                    ctx.set_cstate(ConnState::Unconnected);
                    if wait_connect_int(&ctx, &mut commands, &mut want).await == Some(true) {
                        return;
                    }
                    continue;
                }
            },
        };
        ctx.connecting(std::mem::take(&mut want.discard_my_data));
        let socks = tokio::select! {
            s = establish(
                l,
                ctx.cfg.local,
                ctx.cfg.peer,
                crate::peer::sockbuf::SocketBuffers::of(&ctx.cfg.settings),
            ) => s,
            cmd = commands.recv() => {
                if idle_command(cmd, &mut want) == Some(true) {
                    return;
                }
                continue;
            }
        };
        ctx.socket_up(socks.resolve_conflicts);
        let end = Session::run(&ctx, socks, &mut commands).await;
        // Not listening while not in WFConnection: the peer's attempts fail at once
        // instead of waiting in our listen queue.
        drop(listener.take());
        let before = ctx.resource.state();
        let fence = matches!(
            end,
            End::Lost(..) | End::Refused(_) | End::Dropped(_) | End::DisconnectUnconfirmed(_)
        ) && crate::handlers::fence_peer::on_connection_lost(&ctx.resource, &before);
        ctx.cleanup().await;
        crate::handlers::after_connection_lost(&ctx.resource, &before);
        if fence {
            tokio::spawn(crate::handlers::fence_peer::fence(
                Arc::clone(&ctx.resource),
                Arc::clone(&ctx.changed),
            ));
        }
        match end {
            End::Lost(cs, reason) => {
                tracing::warn!(resource = %ctx.name(), peer = %ctx.cfg.peer_name, "connection lost: {reason}");
                ctx.connection_lost(cs);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            End::Refused(reason) => {
                tracing::error!(resource = %ctx.name(), peer = %ctx.cfg.peer_name, "connection refused: {reason}; retrying in {} s", ctx.cfg.settings.connect_int_s);
                ctx.disconnecting();
                ctx.set_cstate(ConnState::Unconnected);
                if wait_connect_int(&ctx, &mut commands, &mut want).await == Some(true) {
                    return;
                }
            }
            End::Dropped(reason) => {
                tracing::error!(resource = %ctx.name(), peer = %ctx.cfg.peer_name, "connection dropped: {reason}; StandAlone until 'rdbdadm connect'");
                want.connect = false;
                ctx.disconnecting();
            }
            End::Disconnect(tx) | End::DisconnectUnconfirmed(tx) => {
                tracing::info!(resource = %ctx.name(), "disconnected by request");
                want.connect = false;
                ctx.disconnecting();
                let _ = tx.send(());
            }
            End::Shutdown(tx) => {
                ctx.set_cstate(ConnState::StandAlone);
                let _ = tx.send(());
                return;
            }
        }
    }
}
