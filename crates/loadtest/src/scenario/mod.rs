//! What each client task does in each scenario, and the lifecycle checks it
//! makes on the way. `worker` holds a client task's moves; `load`,
//! `lifecycle` and `reconnect` are the scenarios made of them.

mod lifecycle;
mod load;
mod reconnect;
mod worker;

use std::sync::Arc;

use crate::options::Scenario;
use worker::Client;

pub use worker::{Ctx, Plan};

/// Runs client `index` to the end of the plan.
pub async fn client(ctx: Arc<Ctx>, index: usize) {
    let mut c = Client::new(ctx.clone(), index);
    match ctx.args.scenario {
        Scenario::Throughput => c.throughput().await,
        Scenario::Churn => c.churn().await,
        Scenario::Lifecycle => c.lifecycle(ctx.idle_clients[index]).await,
        Scenario::Reconnect if c.session.stateless => c.throughput().await,
        Scenario::Reconnect => c.reconnect().await,
        // Roles go by pairs of clients, so with --protocol mixed (which
        // alternates by client) every role has both generations.
        Scenario::Mixed => match (index / 2) % 5 {
            0 | 2 => c.throughput().await,
            1 => c.churn().await,
            3 => c.idler().await,
            _ => c.dropper().await,
        },
    }
}
