//! The control-socket handlers of `attach` and `adjust` (they need the configuration
//! file and, for `adjust`, `up`).

use rdbd_control::{exit_code, Response};

use super::adjust::{self, Step};
use crate::control::Controller;

impl Controller {
    fn load_resource_config(&self, name: &str) -> Result<rdbd_config::Resource, Response> {
        let config = rdbd_config::load(&self.opts.config_path)
            .map_err(|e| Response::error(exit_code::CONFIG, e.to_string()))?;
        config
            .resource(name)
            .cloned()
            .map_err(|e| Response::error(exit_code::CONFIG, format!("{name}: {e}")))
    }

    /// `attach`: the disk of a Diskless resource, as the configuration file names it.
    pub(crate) async fn attach(&self, name: &str) -> Response {
        let Some(resource) = self.exports.get(name) else {
            return Response::error(
                exit_code::CONFIG,
                format!("{name}: No such resource (it is not up on this node; use 'rdbdadm up')"),
            );
        };
        let disk = resource.state().disk;
        if disk != rdbd_types::DiskState::Diskless {
            // drbdsetup attach: "Failure: (124) ..." and its exit code 10.
            return Response::error(
                exit_code::CONFIG,
                format!("{name}: Failure: (124) Device is attached to a disk (use detach first): disk is {disk}"),
            );
        }
        let file = match self.load_resource_config(name) {
            Ok(f) => f,
            Err(r) => return r,
        };
        match super::attach::attach(&resource, &file, &self.opts.node_name).await {
            Ok(message) => Response::Ok { message },
            Err(e) => Response::error(exit_code::STATE_CHANGE_FAILED, format!("{name}: {e}")),
        }
    }

    /// `adjust [-d]`.
    pub(crate) async fn adjust(&self, name: &str, dry_run: bool) -> Response {
        let file = match self.load_resource_config(name) {
            Ok(f) => f,
            Err(r) => return r,
        };
        let resource = self.exports.get(name);
        let running = self.running.get(name);
        let state = resource.as_ref().map(|r| r.state());
        let steps = match adjust::plan(
            running.as_ref(),
            state.as_ref(),
            &file,
            &self.opts.node_name,
        ) {
            Ok(s) => s,
            Err(e) => return Response::error(exit_code::CONFIG, format!("{name}: {e}")),
        };
        let lines: Vec<String> = steps.iter().map(|s| s.describe(name)).collect();
        if dry_run {
            return Response::Ok {
                message: lines.join("\n"),
            };
        }
        if steps.contains(&Step::Up) {
            return self.up(name).await;
        }
        let Some(resource) = resource else {
            return Response::error(
                exit_code::FAILED,
                format!("{name}: went down during adjust"),
            );
        };
        match adjust::apply(&resource, &steps, &file, &self.opts.node_name).await {
            Ok(done) => {
                self.running.set(name, file);
                for line in &done {
                    tracing::info!(resource = name, "adjust: {line}");
                }
                Response::ok()
            }
            Err(e) => Response::error(
                exit_code::STATE_CHANGE_FAILED,
                format!("{name}: adjust: {e}"),
            ),
        }
    }
}
