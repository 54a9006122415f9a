//! One process's part of a cluster, set up: authenticated connections to every peer, the
//! heartbeat watching them, and timely's allocators over the checked (and maybe sealed)
//! data connections.

use std::sync::Arc;

use timely::communication::Hooks;
use timely::communication::allocator::zero_copy::initialize::{
    CommsGuard, initialize_networking_from_sockets,
};
use timely::communication::allocator::{AllocatorBuilder, ProcessBuilder};

use super::ExecConfig;
use super::handshake::{Security, Shape};
use super::heartbeat::{Heartbeat, HeartbeatPeer};
use super::network::{self, Listening};
use super::wire::{FrameCheck, PeerLink, PeerStream};
use crate::engine::failure::Failure;
use crate::errors::FlowError;
use crate::flow::Dataflow;

pub(crate) struct Connected {
    pub(crate) builders: Vec<AllocatorBuilder>,
    pub(crate) comms: CommsGuard,
    pub(crate) heartbeat: Heartbeat,
    pub(crate) listening: Listening,
}

impl Connected {
    pub(crate) fn connect(
        flow: &Dataflow,
        addresses: &[String],
        process: usize,
        threads: usize,
        config: &ExecConfig,
        failure: &Arc<Failure>,
    ) -> Result<Connected, FlowError> {
        let options = &config.cluster;
        if options.encrypt && options.secret.is_none() {
            return Err(FlowError::Setup(
                "encrypting the cluster connections needs a cluster secret \
                 (BWX_CLUSTER_SECRET or BWX_CLUSTER_SECRET_FILE)"
                    .to_string(),
            ));
        }
        let security = Security {
            secret: options.secret.clone(),
            encrypt: options.encrypt,
        };
        let links = network::connect(
            addresses,
            &network::Setup {
                process,
                shape: Shape::new(flow.id().as_str(), addresses.len(), threads),
                security: &security,
                bind: options.bind.as_deref(),
                startup_timeout: options.startup_timeout,
                stop: &config.stop,
            },
        )?;
        let io = |e: std::io::Error| FlowError::Setup(format!("cannot set up the cluster connections: {e}"));
        let mut sockets = Vec::with_capacity(addresses.len());
        let mut watched = Vec::with_capacity(addresses.len());
        for (peer, (data, heartbeat)) in links.data.into_iter().zip(links.heartbeats).enumerate() {
            let (Some(data), Some(heartbeat)) = (data, heartbeat) else {
                sockets.push(None);
                continue;
            };
            let link = Arc::new(PeerLink::new(peer, addresses[peer].clone(), failure.clone()));
            watched.push(HeartbeatPeer {
                link: link.clone(),
                stream: heartbeat.stream,
                data: data.stream.try_clone().map_err(io)?,
                keys: heartbeat.session.keys(),
            });
            let keys = security.encrypt.then(|| data.session.keys());
            let check = FrameCheck::new(peer, process, threads);
            sockets.push(Some(PeerStream::new(data.stream, link, check, keys)));
        }
        let heartbeat = Heartbeat::start(
            watched,
            options.heartbeat_timeout,
            failure.clone(),
            config.stop.clone(),
        )
        .map_err(io)?;
        let hooks = Hooks::default();
        let local = ProcessBuilder::new_typed_vector(threads, hooks.refill.clone(), hooks.spill.clone());
        let (builders, comms) =
            initialize_networking_from_sockets(local, sockets, process, threads, hooks).map_err(io)?;
        Ok(Connected {
            builders: builders.into_iter().map(AllocatorBuilder::Tcp).collect(),
            comms,
            heartbeat,
            listening: links.listener,
        })
    }
}
