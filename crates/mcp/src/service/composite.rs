//! Several services in order, served as one: the catalog is the union of
//! theirs (on a name both offer, the earlier service's entry is the one
//! listed and called), a request goes to the service that owns what it
//! names (a task to the member that owns it), and services can be added
//! while the server runs. The union
//! follows each member's catalog, so a change in any of them reaches the
//! clients of the whole, as do the resource updates a member announces for
//! the resources it owns. A client that a member offers something else
//! (its own server's lists) gets a union of its own, routed the same way,
//! and hears of the lists a member changed for it alone. Each member
//! watches the resources the clients of the whole are subscribed to.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::{Arc, RwLock, Weak};

use async_trait::async_trait;
use rmcp::model::{ErrorCode, ErrorData};
use serde::Deserialize;
use serde_json::{json, Value};
use sessiongate_core::upstream::UpstreamName;
use tokio::sync::{broadcast, watch};

use super::catalog::{Catalog, ListKind, LiveCatalog, ResourceUpdate, ResourceWatch, Watched};
use super::{Answer, Capabilities, Service};
use crate::context::RequestContext;
use crate::request::Request;

/// An ordered set of services behind one catalog.
#[derive(Default)]
pub struct Composite {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// Replaced whole when a member or a member's catalog changes, so a
    /// request reads one consistent set of routes.
    members: RwLock<Arc<Members>>,
    catalog: LiveCatalog,
}

/// The members and, for each name in the union, the member that owns it.
#[derive(Default)]
struct Members {
    services: Vec<Arc<dyn Service>>,
    tools: HashMap<String, usize>,
    prompts: HashMap<String, usize>,
    resources: HashMap<String, usize>,
    capabilities: Capabilities,
    /// Whether a member relays to an upstream: without one, no request
    /// needs looking up for the request log.
    relays: bool,
}

impl Composite {
    pub fn new() -> Self {
        Composite::default()
    }

    /// Adds `service` after the others. Its catalog joins the union now and
    /// is followed from then on (this needs a Tokio runtime).
    pub fn add(&self, service: Arc<dyn Service>) {
        let changes = service.catalog().subscribe();
        let updates = service.catalog().updates();
        let client_lists = service.catalog().client_lists();
        let member = Arc::downgrade(&service);
        tokio::spawn(mirror_watches(
            self.shared.catalog.watched_resources(),
            member.clone(),
        ));
        self.shared.update(|services| services.push(service));
        tokio::spawn(follow(Arc::downgrade(&self.shared), changes));
        tokio::spawn(forward_updates(
            Arc::downgrade(&self.shared),
            member,
            updates,
        ));
        let shared = Arc::downgrade(&self.shared);
        tokio::spawn(forward(
            client_lists,
            "a client's list changes",
            move |(client, list): (Arc<str>, ListKind)| {
                let Some(shared) = shared.upgrade() else {
                    return ControlFlow::Break(());
                };
                shared.catalog.lists_changed_for(&client, &[list]);
                ControlFlow::Continue(())
            },
        ));
    }

    fn members(&self) -> Arc<Members> {
        self.shared
            .members
            .read()
            .expect("composite members poisoned")
            .clone()
    }

    /// The routes and union for the client `ctx` serves, when a member
    /// offers it something other than its catalog; built for the request,
    /// as only such clients need them.
    fn view(&self, ctx: &RequestContext) -> Option<(Arc<Members>, Catalog)> {
        let members = self.members();
        let own: Vec<_> = members
            .services
            .iter()
            .map(|s| s.catalog_for(ctx))
            .collect();
        if own.iter().all(Option::is_none) {
            return None;
        }
        let (next, union) = union(members.services.clone(), |i, service| {
            own[i]
                .clone()
                .unwrap_or_else(|| service.catalog().current())
        });
        Some((Arc::new(next), union))
    }

    /// The members' routes as `ctx`'s client sees them.
    fn members_for(&self, ctx: &RequestContext) -> Arc<Members> {
        match self.view(ctx) {
            Some((members, _)) => members,
            None => self.members(),
        }
    }
}

/// The routes and the union of `services`' catalogs, each read with
/// `catalog_of`.
fn union(
    services: Vec<Arc<dyn Service>>,
    catalog_of: impl Fn(usize, &Arc<dyn Service>) -> Arc<Catalog>,
) -> (Members, Catalog) {
    let mut next = Members {
        services,
        ..Members::default()
    };
    let mut union = Catalog::default();
    for (i, service) in next.services.iter().enumerate() {
        next.capabilities = next.capabilities.union(service.capabilities());
        next.relays |= service.upstream().is_some();
        let catalog = catalog_of(i, service);
        for tool in &catalog.tools {
            if !next.tools.contains_key(tool.name.as_ref()) {
                next.tools.insert(tool.name.to_string(), i);
                union.tools.push(tool.clone());
            }
        }
        for prompt in &catalog.prompts {
            if let Some(name) = prompt["name"].as_str() {
                if !next.prompts.contains_key(name) {
                    next.prompts.insert(name.to_string(), i);
                    union.prompts.push(prompt.clone());
                }
            }
        }
        for resource in &catalog.resources {
            if let Some(uri) = resource["uri"].as_str() {
                if !next.resources.contains_key(uri) {
                    next.resources.insert(uri.to_string(), i);
                    union.resources.push(resource.clone());
                }
            }
        }
        union.templates.extend(catalog.templates.iter().cloned());
    }
    (next, union)
}

/// Rebuilds the union each time a member's catalog changes, until the
/// member or the composite is gone.
async fn follow(shared: Weak<Shared>, mut changes: watch::Receiver<Arc<Catalog>>) {
    while changes.changed().await.is_ok() {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.update(|_| {});
    }
}

/// Keeps `member` watching the resources the composite's clients are
/// subscribed to (a member tells for itself which are its), until the
/// member or the composite is gone.
async fn mirror_watches(mut watched: watch::Receiver<Watched>, member: Weak<dyn Service>) {
    let mut held: HashMap<Arc<str>, ResourceWatch> = HashMap::new();
    loop {
        let Some(member) = member.upgrade() else {
            return;
        };
        {
            let now = watched.borrow_and_update();
            held.retain(|uri, _| now.contains_key(uri));
            for uri in now.keys() {
                if !held.contains_key(uri) {
                    held.insert(uri.clone(), member.catalog().watch_resource(uri));
                }
            }
        }
        drop(member);
        if watched.changed().await.is_err() {
            return;
        }
    }
}

/// Passes on the resource updates a member announces, for the resources
/// it owns in the union (a listed one another member shadows is not its to
/// announce) or that no member lists (a template's), until the member or
/// the composite is gone.
async fn forward_updates(
    shared: Weak<Shared>,
    member: Weak<dyn Service>,
    updates: broadcast::Receiver<ResourceUpdate>,
) {
    forward(updates, "resource updates", |update: ResourceUpdate| {
        let (Some(shared), Some(member)) = (shared.upgrade(), member.upgrade()) else {
            return ControlFlow::Break(());
        };
        let members = shared
            .members
            .read()
            .expect("composite members poisoned")
            .clone();
        let owned = match members.resources.get(&*update.uri) {
            Some(&i) => Arc::ptr_eq(&members.services[i], &member),
            None => true,
        };
        if owned {
            shared.catalog.announce_update(update);
        }
        ControlFlow::Continue(())
    })
    .await
}

/// Hands each of a member's announcements to `each` until the member stops
/// announcing or `each` breaks; one that falls behind misses the oldest,
/// with a warning naming `what`.
async fn forward<T: Clone>(
    mut announced: broadcast::Receiver<T>,
    what: &str,
    mut each: impl FnMut(T) -> ControlFlow<()>,
) {
    loop {
        match announced.recv().await {
            Ok(item) => {
                if each(item).is_break() {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "{what} were missed: announcing them fell behind");
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

impl Shared {
    /// Changes the member list with `edit`, then rebuilds the routes and the
    /// union from every member's current catalog.
    fn update(&self, edit: impl FnOnce(&mut Vec<Arc<dyn Service>>)) {
        // Under the lock: the union published last is that of the last set
        // of members and catalogs read.
        let mut members = self.members.write().expect("composite members poisoned");
        let mut services = members.services.clone();
        edit(&mut services);
        let (next, union) = union(services, |_, service| service.catalog().current());
        *members = Arc::new(next);
        self.catalog.set(union);
    }
}

#[async_trait]
impl Service for Composite {
    fn catalog(&self) -> &LiveCatalog {
        &self.shared.catalog
    }

    fn catalog_for(&self, ctx: &RequestContext) -> Option<Arc<Catalog>> {
        self.view(ctx).map(|(_, union)| Arc::new(union))
    }

    fn capabilities(&self) -> Capabilities {
        self.members().capabilities
    }

    /// The upstream of the member that owns the tool, prompt or listed
    /// resource the request names: one lookup in the routes it is served by.
    /// A resource read through a member's template is not attributed.
    fn upstream_of(&self, ctx: &RequestContext, request: &Request) -> Option<UpstreamName> {
        let members = self.members_for(ctx);
        if !members.relays {
            return None;
        }
        let (routes, key) = match request.method.as_str() {
            "tools/call" => (&members.tools, request.name().ok()?),
            "prompts/get" => (&members.prompts, request.name().ok()?),
            "resources/read" => (&members.resources, request.uri().ok()?),
            "tasks/get" | "tasks/update" | "tasks/cancel" => {
                return members.task_owner(request)?.upstream_of(ctx, request)
            }
            _ => return None,
        };
        members.services[*routes.get(key)?].upstream_of(ctx, request)
    }

    /// As the member that serves the request says; a resource read that
    /// no listed resource names (a template's) only if every member that
    /// serves resources passes input through, as any of them may serve it.
    fn passes_input_through(&self, request: &Request) -> bool {
        let members = self.members();
        if !members.relays {
            return false;
        }
        let owner = |routes: &HashMap<String, usize>, key: Option<&str>| {
            key.and_then(|k| routes.get(k))
                .map(|&i| &members.services[i])
        };
        let member = match request.method.as_str() {
            "tools/call" => owner(&members.tools, request.name().ok()),
            "prompts/get" => owner(&members.prompts, request.name().ok()),
            "resources/read" => match owner(&members.resources, request.uri().ok()) {
                Some(member) => Some(member),
                None => {
                    let mut serving = members
                        .services
                        .iter()
                        .filter(|s| s.capabilities().resources)
                        .peekable();
                    return serving.peek().is_some()
                        && serving.all(|s| s.passes_input_through(request));
                }
            },
            "tasks/get" | "tasks/update" | "tasks/cancel" => members.task_owner(request),
            _ => None,
        };
        member.is_some_and(|m| m.passes_input_through(request))
    }

    fn owns_task(&self, task_id: &str) -> bool {
        let members = self.members();
        members.relays && members.services.iter().any(|s| s.owns_task(task_id))
    }

    /// A log level goes to every member; a subscription to the member that
    /// lists the resource, or (a template's) to each that serves resources.
    async fn client_setting(
        &self,
        ctx: &RequestContext,
        request: &Request,
    ) -> Result<(), ErrorData> {
        let members = self.members_for(ctx);
        let owner = request
            .uri()
            .ok()
            .and_then(|uri| members.resources.get(uri))
            .map(|&i| &members.services[i]);
        match (request.method.as_str(), owner) {
            ("logging/setLevel", _) => {
                for service in &members.services {
                    service.client_setting(ctx, request).await?;
                }
            }
            (_, Some(service)) => service.client_setting(ctx, request).await?,
            (_, None) => {
                for service in members
                    .services
                    .iter()
                    .filter(|s| s.capabilities().resources)
                {
                    service.client_setting(ctx, request).await?;
                }
            }
        }
        Ok(())
    }

    async fn serve(&self, ctx: &RequestContext, request: Request) -> Result<Answer, ErrorData> {
        let members = self.members_for(ctx);
        let owner = |routes: &HashMap<String, usize>, key: &str| {
            routes.get(key).map(|&i| &members.services[i])
        };
        match request.method.as_str() {
            "tools/call" => {
                let name = request.name()?;
                let Some(service) = owner(&members.tools, name) else {
                    return Err(ErrorData::invalid_params(
                        format!("Unknown tool: {name}"),
                        None,
                    ));
                };
                service.serve(ctx, request).await
            }
            "prompts/get" => {
                let name = request.name()?;
                let Some(service) = owner(&members.prompts, name) else {
                    return Err(ErrorData::invalid_params(
                        format!("Unknown prompt: {name}"),
                        None,
                    ));
                };
                service.serve(ctx, request).await
            }
            "resources/read" => {
                let uri = request.uri()?;
                if let Some(service) = owner(&members.resources, uri) {
                    return service.serve(ctx, request).await;
                }
                // Not a listed resource: perhaps one of a member's templates.
                let offering = members
                    .services
                    .iter()
                    .filter(|s| s.capabilities().resources);
                first_that_knows(offering, ErrorCode::RESOURCE_NOT_FOUND, ctx, request).await
            }
            "tasks/get" | "tasks/update" | "tasks/cancel" => match members.task_owner(&request) {
                Some(service) => service.serve(ctx, request).await,
                None => Err(ErrorData::invalid_params(
                    "Failed to retrieve task: Task not found",
                    None,
                )),
            },
            "completion/complete" => {
                let owner = completion_target(&request).and_then(|target| match target {
                    Target::Prompt(name) => owner(&members.prompts, &name),
                    Target::Resource(uri) => owner(&members.resources, &uri),
                });
                match owner {
                    Some(service) => service.serve(ctx, request).await,
                    None => {
                        let offering = members
                            .services
                            .iter()
                            .filter(|s| s.capabilities().completions);
                        first_that_knows(offering, ErrorCode::METHOD_NOT_FOUND, ctx, request).await
                    }
                }
            }
            _ => {
                first_that_knows(
                    members.services.iter(),
                    ErrorCode::METHOD_NOT_FOUND,
                    ctx,
                    request,
                )
                .await
            }
        }
    }
}

impl Members {
    /// The member that owns the task a `tasks/*` request names.
    fn task_owner(&self, request: &Request) -> Option<&Arc<dyn Service>> {
        let id = request.params.task_id.as_ref()?.as_str()?;
        self.services.iter().find(|s| s.owns_task(id))
    }
}

/// Asks each service in turn until one answers other than `unknown`; the
/// last refusal if none does.
async fn first_that_knows(
    services: impl Iterator<Item = &Arc<dyn Service>>,
    unknown: ErrorCode,
    ctx: &RequestContext,
    request: Request,
) -> Result<Answer, ErrorData> {
    let mut refusal = match unknown {
        ErrorCode::RESOURCE_NOT_FOUND => {
            let uri = request.uri().unwrap_or_default();
            ErrorData::new(
                unknown,
                format!("Resource not found: {uri}"),
                Some(json!({ "uri": uri })),
            )
        }
        _ => ErrorData::new(
            unknown,
            format!("Method not found: {}", request.method),
            None,
        ),
    };
    for service in services {
        match service.serve(ctx, request.clone()).await {
            Err(e) if e.code == unknown => refusal = e,
            answered => return answered,
        }
    }
    Err(refusal)
}

/// What a `completion/complete` completes an argument of.
enum Target {
    Prompt(String),
    Resource(String),
}

fn completion_target(request: &Request) -> Option<Target> {
    #[derive(Deserialize)]
    struct Params {
        #[serde(rename = "ref")]
        reference: Value,
    }
    let reference = request.parse::<Params>().ok()?.reference;
    let text = |key: &str| reference[key].as_str().map(str::to_string);
    match reference["type"].as_str()? {
        "ref/prompt" => text("name").map(Target::Prompt),
        "ref/resource" => text("uri").map(Target::Resource),
        _ => None,
    }
}
